"""The wire formats gpu-scheduler reads and writes, one module each, encode and decode side by side.

Every byte the scheduler puts on a Kubernetes object (or reads back from one) is built and parsed
here and nowhere else: timestamps, the node agent's telemetry annotation, the namespace allocation
annotation, the ResourceQuota body and Event bodies. This package imports nothing else of
gpu-scheduler, so every layer (and the sandbox API server) may use it.
"""

COMPONENT = "gpu-scheduler"
MANAGED_BY = {"app.kubernetes.io/managed-by": COMPONENT}
