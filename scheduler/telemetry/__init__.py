"""GPU telemetry: the NVML reader (real or fake backend), health rules and the node agent."""
