"""What every gpu-scheduler process serves about itself: health probes, /metrics, and the usual
process metrics. Shared by the controller and the node agent, which know nothing of each other."""
