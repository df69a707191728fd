"""The usual process_* (CPU, memory, file descriptors, start time) and python_* (GC, interpreter)
metrics, on a registry of the caller's own (the default registry is process-global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector


def add_process_metrics(registry: CollectorRegistry) -> None:
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
