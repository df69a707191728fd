"""The node agent process, wired: an NVML reader (the real pynvml, or a fake file for tests and
demos), health rules, a publisher (the Node's telemetry annotation, or stdout for a dry run),
and /healthz /readyz /metrics. `gpu-scheduler agent` builds an `AgentAppConfig` and calls `run`."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any

from scheduler.actuator.connect import connect
from scheduler.observability.http import serve
from scheduler.telemetry.agent import Agent, AgentConfig, NodeAnnotationPublisher, PrintPublisher, Publisher
from scheduler.telemetry.health import HealthRules
from scheduler.telemetry.metrics import AgentMetrics
from scheduler.telemetry.nvml import NvmlReader


@dataclass(frozen=True)
class AgentAppConfig:
    node: str
    telemetry_key: str  # the annotation it writes (Keys.telemetry)
    rules: HealthRules
    interval: timedelta
    heartbeat: timedelta
    kubeconfig: str | None = None
    in_cluster: bool = False
    nvml_fake: str | None = None  # a fake NVML file instead of the GPUs
    metrics_port: int = 9401
    once: bool = False  # read, publish and exit
    dry_run: bool = False  # print the annotation instead of writing it


class AgentSetupError(Exception):
    """The agent cannot start (an unreadable fake NVML file); the message says why."""


def nvml_backend(config: AgentAppConfig) -> ModuleType | Any:
    if config.nvml_fake:
        from scheduler.telemetry.fake_nvml import FakeNvml, FakeNvmlFileError

        try:
            return FakeNvml.from_file(config.nvml_fake)
        except (OSError, FakeNvmlFileError) as err:
            raise AgentSetupError(str(err)) from None
    import pynvml

    return pynvml


def run(config: AgentAppConfig, stop: threading.Event) -> int:
    reader = NvmlReader(nvml_backend(config))
    publisher: Publisher
    if config.dry_run:
        publisher = PrintPublisher(sys.stdout)
    else:
        publisher = NodeAnnotationPublisher(connect(config.kubeconfig, config.in_cluster), config.telemetry_key)
    metrics = AgentMetrics(config.node)
    agent = Agent(
        reader,
        publisher,
        AgentConfig(config.node, interval=config.interval, heartbeat=config.heartbeat, rules=config.rules),
        on_reading=metrics.observe,
        on_publish=metrics.writes.labels(config.node).inc,
    )
    if config.once:
        agent.tick()
        reader.close()
        return 0

    def ready() -> tuple[bool, str]:
        if agent.last_reading is None:
            return False, "no NVML reading yet"
        return True, "ok"

    try:
        http = serve(metrics.registry, ready, "0.0.0.0", config.metrics_port)
    except OSError as err:
        reader.close()
        raise AgentSetupError(str(err)) from None
    print(f"gpu-scheduler agent on {config.node}: metrics on :{http.port}/metrics", file=sys.stderr, flush=True)
    agent.run(stop)
    reader.close()
    http.stop()
    return 0
