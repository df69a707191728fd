"""The agent's per-GPU Prometheus metrics (`gpu_agent_*`, the contract in docs/metrics.md).

Readings are exported from the latest NVML reading at scrape time, so a GPU that disappears
leaves no stale series; a reading NVML does not support on a GPU is simply absent.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from scheduler.observability.process import add_process_metrics
from scheduler.telemetry.health import GpuHealth
from scheduler.telemetry.nvml import NodeReading

PREFIX = "gpu_agent"
GPU_LABELS = ["gpu", "uuid", "model", "node"]


class _ReadingCollector:
    def __init__(self, node: str) -> None:
        self.node = node
        self.reading: NodeReading | None = None
        self.health: dict[str, GpuHealth] = {}
        self.last_xid: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        f: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "healthy": GaugeMetricFamily(
                f"{PREFIX}_healthy", "1 when the agent counts the GPU as healthy", labels=GPU_LABELS
            ),
            "util": GaugeMetricFamily(
                f"{PREFIX}_utilization_ratio", "GPU utilisation over NVML's last sample period (0-1)", labels=GPU_LABELS
            ),
            "mem_util": GaugeMetricFamily(
                f"{PREFIX}_memory_utilization_ratio", "Memory controller utilisation (0-1)", labels=GPU_LABELS
            ),
            "used": GaugeMetricFamily(f"{PREFIX}_memory_used_bytes", "Device memory in use", labels=GPU_LABELS),
            "total": GaugeMetricFamily(f"{PREFIX}_memory_total_bytes", "Device memory installed", labels=GPU_LABELS),
            "temp": GaugeMetricFamily(f"{PREFIX}_temperature_celsius", "GPU core temperature", labels=GPU_LABELS),
            "power": GaugeMetricFamily(f"{PREFIX}_power_watts", "Power draw", labels=GPU_LABELS),
            "ecc": CounterMetricFamily(
                f"{PREFIX}_ecc_errors",
                "ECC errors counted by the driver (volatile: since the "
                "last driver load; aggregate: over the GPU's life)",
                labels=[*GPU_LABELS, "bit", "scope"],
            ),
            "remap": GaugeMetricFamily(
                f"{PREFIX}_remapped_rows_pending", "1 while a row remap waits for a GPU reset", labels=GPU_LABELS
            ),
            "last_xid": GaugeMetricFamily(
                f"{PREFIX}_last_xid",
                "The last XID seen on the GPU since the agent started (0: none)",
                labels=GPU_LABELS,
            ),
            "up": GaugeMetricFamily(f"{PREFIX}_nvml_up", "1 when NVML could be read at the last poll", labels=["node"]),
        }
        r = self.reading
        if r is not None:
            f["up"].add_metric([self.node], 0 if r.error else 1)
            for g in r.gpus:
                key = g.uuid or f"index-{g.index}"
                labels = [str(g.index), g.uuid, g.name, self.node]
                state = self.health.get(key)
                f["healthy"].add_metric(labels, 1 if state is None or state.healthy else 0)
                f["last_xid"].add_metric(labels, self.last_xid.get(key, 0))
                if g.utilization_gpu is not None:
                    f["util"].add_metric(labels, g.utilization_gpu / 100)
                if g.utilization_memory is not None:
                    f["mem_util"].add_metric(labels, g.utilization_memory / 100)
                if g.memory_used_bytes is not None:
                    f["used"].add_metric(labels, g.memory_used_bytes)
                if g.memory_total_bytes is not None:
                    f["total"].add_metric(labels, g.memory_total_bytes)
                if g.temperature_c is not None:
                    f["temp"].add_metric(labels, g.temperature_c)
                if g.power_mw is not None:
                    f["power"].add_metric(labels, g.power_mw / 1000)
                for (bit, scope), value in sorted(g.ecc.items()):
                    f["ecc"].add_metric([*labels, bit, scope], value)
                if g.remapped_rows_pending is not None:
                    f["remap"].add_metric(labels, 1 if g.remapped_rows_pending else 0)
        yield from f.values()


class AgentMetrics:
    def __init__(self, node: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.node = node
        add_process_metrics(self.registry)
        self._readings = _ReadingCollector(node)
        self.registry.register(self._readings)
        r = self.registry
        self.xid_events = Counter(
            f"{PREFIX}_xid_events_total", "XID events seen, by XID", [*GPU_LABELS, "xid"], registry=r
        )
        self.writes = Counter(
            f"{PREFIX}_telemetry_writes_total", "Telemetry annotations written to the Node", ["node"], registry=r
        )
        self.nvml_errors = Counter(
            f"{PREFIX}_nvml_errors_total", "NVML calls that failed (not 'not supported')", ["node", "call"], registry=r
        )
        self.writes.labels(node)

    def observe(self, reading: NodeReading, health: dict[str, GpuHealth]) -> None:
        self._readings.reading = reading
        self._readings.health = health
        if reading.error:
            self.nvml_errors.labels(self.node, "init").inc()
        by_index = {g.index: g for g in reading.gpus}
        for g in reading.gpus:
            for call in g.errors:
                self.nvml_errors.labels(self.node, call).inc()
        for index, xid in reading.xids:
            gpu = by_index.get(index)
            uuid, name = (gpu.uuid, gpu.name) if gpu else ("", "")
            self._readings.last_xid[uuid or f"index-{index}"] = xid
            self.xid_events.labels(str(index), uuid, name, self.node, str(xid)).inc()
