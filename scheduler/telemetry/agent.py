"""The node agent: read NVML, judge each GPU's health, tell the controller when it matters.

It publishes the telemetry annotation (docs/telemetry.md) only when health changes or a heartbeat
is due (default every 5 minutes, jittered so that 10,000 agents do not write in step): a node
whose GPUs stay healthy costs the API server 12 writes an hour, and a GPU that fails is reported
within one poll (XID events wake the loop at once). Utilisation is averaged over the samples since
the last publish: coarse by design, so that it never causes a write by itself.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TextIO

from scheduler.telemetry.health import GpuHealth, HealthRules, update
from scheduler.telemetry.nvml import NodeReading, NvmlReader
from scheduler.wire.telemetry import VERSION, GpuReport, TelemetryReport, encode, utc_now_stamp

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from scheduler.actuator.retry import Backoff

log = logging.getLogger(__name__)

# what a change of must be published now (see _health_key)
HealthKey = tuple[str, str, int, tuple[tuple[int, str, bool, str], ...]]


class Publisher(Protocol):
    def publish(self, node: str, annotation: str) -> None: ...


@dataclass
class AgentConfig:
    node: str
    interval: timedelta = timedelta(seconds=10)  # how often NVML is read
    heartbeat: timedelta = timedelta(minutes=5)  # publish at least this often
    jitter: float = 0.1  # heartbeat +- this fraction
    rules: HealthRules = field(default_factory=HealthRules)


@dataclass
class Agent:
    reader: NvmlReader
    publisher: Publisher
    config: AgentConfig
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    on_reading: Callable[[NodeReading, dict[str, GpuHealth]], None] | None = None
    on_publish: Callable[[], None] | None = None  # after each annotation written (the writes metric)

    health: dict[str, GpuHealth] = field(default_factory=dict)  # by GPU uuid (index if none)
    last_reading: NodeReading | None = None
    last_published: HealthKey | None = None
    next_heartbeat: datetime | None = None
    writes: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)

    def tick(self) -> TelemetryReport | None:
        """Read once; publish if health changed or the heartbeat is due. Returns what was published."""
        now = self.now()
        reading = self.reader.read()
        self.last_reading = reading
        report = self.report(reading, now)
        if self.on_reading is not None:
            self.on_reading(reading, self.health)
        key = _health_key(report)
        due = self.next_heartbeat is None or now >= self.next_heartbeat
        if key == self.last_published and not due:
            return None
        self.publisher.publish(self.config.node, encode(report))
        self.writes += 1
        if self.on_publish is not None:
            self.on_publish()
        self.last_published = key
        self.samples.clear()
        spread = 1 + self.config.jitter * (2 * self.rng.random() - 1)
        self.next_heartbeat = now + self.config.heartbeat * spread
        return report

    def report(self, reading: NodeReading, now: datetime) -> TelemetryReport:
        stamp = utc_now_stamp(now)
        if reading.error:
            return TelemetryReport(version=VERSION, timestamp=stamp, total_gpus=0, healthy_gpus=0, error=reading.error)
        xids: dict[int, list[int]] = {}
        for index, xid in reading.xids:
            xids.setdefault(index, []).append(xid)
        gpus = []
        for g in reading.gpus:
            key = g.uuid or f"index-{g.index}"
            state = self.health.setdefault(key, GpuHealth())
            update(state, g, xids.get(g.index, []), now, self.config.rules, reset=reading.reopened)
            if g.utilization_gpu is not None:
                self.samples.setdefault(key, []).append(g.utilization_gpu / 100)
            seen = self.samples.get(key)
            gpus.append(
                GpuReport(
                    index=g.index,
                    uuid=g.uuid,
                    name=g.name,
                    healthy=state.healthy,
                    reason=state.reason,
                    utilization=round(sum(seen) / len(seen), 2) if seen else None,
                    memory_used_bytes=g.memory_used_bytes,
                    memory_total_bytes=g.memory_total_bytes,
                )
            )
        return TelemetryReport(
            version=VERSION,
            timestamp=stamp,
            driver_version=reading.driver_version,
            total_gpus=len(gpus),
            healthy_gpus=sum(1 for g in gpus if g.healthy),
            gpus=gpus,
        )

    def run(self, stop: threading.Event) -> None:
        """Read every `interval`; an XID event cuts the wait short so a failure is told at once."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a failed publish is retried at the next tick (health key unchanged)
                log.exception("telemetry tick failed")
                self.last_published = None
            waited = 0.0
            interval = self.config.interval.total_seconds()
            while waited < interval and not stop.is_set():
                slice_s = min(1.0, interval - waited)
                if self.reader.poll_events(int(slice_s * 1000)):
                    break
                waited += slice_s


def _health_key(report: TelemetryReport) -> HealthKey:
    """What a change of must be published now: per-GPU health and reason, and NVML errors."""
    return (
        report.error,
        report.driver_version,
        report.total_gpus,
        tuple((g.index, g.uuid, g.healthy, g.reason) for g in report.gpus),
    )


class PrintPublisher:
    """--dry-run: the annotation goes to stdout (and nothing else does)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def publish(self, node: str, annotation: str) -> None:
        print(annotation, file=self.out, flush=True)


class NodeAnnotationPublisher:
    """Merge-patches the telemetry annotation onto the agent's own Node. Conflicts cannot happen
    (a merge patch carries no resourceVersion); throttling, server errors and timeouts are
    retried with the controller's capped, jittered backoff; anything else is raised."""

    def __init__(
        self, api: ApiClient, key: str, backoff: Backoff | None = None, sleep: Callable[[float], None] | None = None
    ) -> None:
        import time

        from kubernetes import client

        from scheduler.actuator.retry import Backoff

        self.core = client.CoreV1Api(api)
        self.key = key
        self.backoff = backoff or Backoff()
        self.sleep = sleep or time.sleep
        self.retries = 0

    def publish(self, node: str, annotation: str) -> None:
        from scheduler.actuator.retry import Transient, classify

        body = {"metadata": {"annotations": {self.key: annotation}}}
        for attempt in range(self.backoff.attempts):
            try:
                self.core.patch_node(node, body, _request_timeout=10)
                return
            except Exception as exc:
                failure = classify(exc, "patch")
                if not isinstance(failure, Transient) or attempt + 1 == self.backoff.attempts:
                    raise
                self.retries += 1
                self.sleep(self.backoff.delay(attempt, failure.retry_after))
