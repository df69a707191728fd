"""The agent's Prometheus metrics (`gpu_agent_*`): an exposition the real promtool accepts without
a single remark, and values in the units their names promise (watts, bytes, ratios 0-1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from scheduler.telemetry.agent import Agent, AgentConfig
from scheduler.telemetry.fake_nvml import FakeNvml
from scheduler.telemetry.metrics import AgentMetrics
from scheduler.telemetry.nvml import NvmlReader

FIXTURES = Path(__file__).parent / "fixtures"
H200 = json.loads((FIXTURES / "dgx-h200.json").read_text())
GPU3 = "GPU-844b76e8-57f6-5082-8330-7eb042eb2724"


class Discard:
    def publish(self, node_name: str, annotation: str) -> None:
        pass


class Node:
    """An agent on a fake NVML that reports every reading to AgentMetrics, as `cmd_agent` wires it."""

    def __init__(self, data: dict[str, Any] | str) -> None:
        self.seconds = 0.0
        def clock() -> float:
            return self.seconds

        nvml = FakeNvml.from_file(FIXTURES / data, clock=clock) if isinstance(data, str) \
            else FakeNvml(data, clock=clock)
        self.metrics = AgentMetrics("n1")
        self.agent = Agent(NvmlReader(nvml), Discard(), AgentConfig("n1"), on_reading=self.metrics.observe)

    def tick(self, after: float = 0) -> None:
        self.seconds += after
        self.agent.tick()

    def value(self, name: str, gpu: int | None = None, **labels: str) -> float | None:
        if gpu is not None:
            g = self.agent.last_reading.gpus[gpu]
            labels = {"gpu": str(gpu), "uuid": g.uuid, "model": g.name, "node": "n1", **labels}
        return self.metrics.registry.get_sample_value(name, labels)

    def exposition(self) -> bytes:
        return generate_latest(self.metrics.registry)


def promtool_check(promtool: Path, exposition: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), "check", "metrics"], input=exposition, capture_output=True, timeout=60)


def timeline_node() -> Node:
    """XIDs, a timed-out call, a lost GPU with a double-bit ECC error, then a reset."""
    n = Node("timeline.json")
    for after in (0, 10, 30, 30):
        n.tick(after)
    return n


# -- promtool ------------------------------------------------------------------------------------
SCENARIOS = {
    "a failed GPU": lambda: _ticked(Node("dgx-h200-xid79.json")),
    "a lost GPU, a timeout and a reset": timeline_node,
    "no driver": lambda: _ticked(Node("no-driver.json")),
    "before the first reading": lambda: Node("dgx-h200.json"),
}


def _ticked(n: Node) -> Node:
    n.tick()
    return n


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_promtool_check_metrics_finds_nothing_to_say(promtool, scenario):
    done = promtool_check(promtool, scenario().exposition())

    assert (done.returncode, done.stdout.decode(), done.stderr.decode()) == (0, "", "")


def test_the_exposition_has_every_documented_agent_metric():
    text = _ticked(Node("dgx-h200-xid79.json")).exposition().decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}

    assert {"gpu_agent_healthy", "gpu_agent_utilization_ratio", "gpu_agent_memory_utilization_ratio",
            "gpu_agent_memory_used_bytes", "gpu_agent_memory_total_bytes", "gpu_agent_temperature_celsius",
            "gpu_agent_power_watts", "gpu_agent_ecc_errors_total", "gpu_agent_last_xid",
            "gpu_agent_xid_events_total", "gpu_agent_nvml_up", "gpu_agent_telemetry_writes_total",
            "gpu_agent_nvml_errors_total", "gpu_agent_remapped_rows_pending"} <= families


# -- values --------------------------------------------------------------------------------------
def test_a_failed_gpu_is_exported_unhealthy_with_its_xid():
    n = Node("dgx-h200-xid79.json")

    n.tick()

    assert [n.value("gpu_agent_healthy", i) for i in range(8)] == [1, 1, 1, 0, 1, 1, 1, 1]
    assert n.value("gpu_agent_xid_events_total", 3, xid="79") == 1
    assert n.value("gpu_agent_last_xid", 3) == 79
    assert n.value("gpu_agent_last_xid", 0) == 0
    assert n.value("gpu_agent_nvml_up", node="n1") == 1


def test_the_xid_counter_counts_each_event_once():
    n = Node({**H200, "events": [{"after_s": 0, "gpu": 3, "xid": 79}, {"after_s": 5, "gpu": 3, "xid": 79},
                                 {"after_s": 15, "gpu": 3, "xid": 94}, {"after_s": 15, "gpu": 1, "xid": 13}]})

    n.tick()
    n.tick(10)
    n.tick(10)
    n.tick(10)

    assert n.value("gpu_agent_xid_events_total", 3, xid="79") == 2
    assert n.value("gpu_agent_xid_events_total", 3, xid="94") == 1
    assert n.value("gpu_agent_xid_events_total", 1, xid="13") == 1  # counted, though not a fault
    assert n.value("gpu_agent_last_xid", 3) == 94
    assert n.value("gpu_agent_healthy", 1) == 1


def test_readings_are_exported_in_the_units_their_names_say():
    n = Node("dgx-h200.json")

    n.tick()

    assert n.value("gpu_agent_power_watts", 0) == pytest.approx(652.310)
    assert n.value("gpu_agent_utilization_ratio", 0) == pytest.approx(0.97)
    assert n.value("gpu_agent_memory_utilization_ratio", 0) == pytest.approx(0.46)
    assert n.value("gpu_agent_memory_used_bytes", 0) == 128849018880
    assert n.value("gpu_agent_memory_total_bytes", 0) == 150754820096
    assert n.value("gpu_agent_temperature_celsius", 0) == 58
    assert n.value("gpu_agent_remapped_rows_pending", 0) == 0


def test_ecc_counters_are_exported_by_bit_and_scope():
    n = Node("v100-pre-ampere.json")

    n.tick()

    ecc = {(bit, scope): n.value("gpu_agent_ecc_errors_total", 1, bit=bit, scope=scope)
           for bit in ("single", "double") for scope in ("volatile", "aggregate")}
    assert ecc == {("single", "volatile"): 3, ("single", "aggregate"): 40,
                   ("double", "volatile"): 1, ("double", "aggregate"): 1}
    assert n.value("gpu_agent_healthy", 1) == 0  # a double-bit error and a page retirement pending
    assert n.value("gpu_agent_remapped_rows_pending", 1) is None  # no remapped rows on a V100


def test_an_unsupported_reading_has_no_series():
    n = Node({"driver_version": "580.65.06", "gpus": [{"index": 0, "uuid": "GPU-0", "name": "NVIDIA H200"}]})

    n.tick()

    assert n.value("gpu_agent_healthy", 0) == 1
    for name in ("gpu_agent_power_watts", "gpu_agent_utilization_ratio", "gpu_agent_temperature_celsius",
                 "gpu_agent_memory_used_bytes", "gpu_agent_remapped_rows_pending"):
        assert n.value(name, 0) is None, name
    assert "gpu_agent_ecc_errors_total{" not in n.exposition().decode()


def test_nvml_that_cannot_start_is_exported_as_down_with_no_gpu_series():
    n = Node("no-driver.json")

    n.tick()
    n.tick(10)

    text = n.exposition().decode()
    assert n.value("gpu_agent_nvml_up", node="n1") == 0
    assert n.value("gpu_agent_nvml_errors_total", node="n1", call="init") == 2
    assert "gpu_agent_healthy{" not in text


def test_a_timed_out_call_is_counted_by_call():
    n = Node({**H200, "events": [{"after_s": 5, "gpu": 0, "timeout": True}]})

    n.tick()
    n.tick(10)

    errors = [line for line in n.exposition().decode().splitlines()
              if line.startswith("gpu_agent_nvml_errors_total{")]
    assert len(errors) == 1 and errors[0].endswith(" 1.0")


def test_telemetry_writes_start_at_zero_for_the_node():
    n = Node("dgx-h200.json")

    assert n.value("gpu_agent_telemetry_writes_total", node="n1") == 0
