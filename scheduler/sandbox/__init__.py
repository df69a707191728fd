"""A Kubernetes-compatible API server in pure Python, for running, demonstrating and testing
gpu-scheduler without a cluster (`run --simulate`, the tests, demos with the real kubectl).

Serves core/v1 Nodes, Namespaces, ResourceQuotas, Pods (with eviction), Events,
events.k8s.io/v1 Events, coordination.k8s.io/v1 Leases and admissionregistration.k8s.io/v1
ValidatingAdmissionPolicies (enforced, with CEL) over plain HTTP on 127.0.0.1, with discovery
(legacy and aggregated), Tables for kubectl, the three patch types, watches, users (bearer tokens,
impersonation) and fault injection. See docs in each module; the public surface is re-exported here.
"""

from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.faults import Fault, Faults
from scheduler.sandbox.identity import UserInfo
from scheduler.sandbox.server import SandboxServer

__all__ = ["ApiError", "Fault", "Faults", "SandboxServer", "UserInfo"]
