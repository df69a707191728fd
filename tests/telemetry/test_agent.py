"""The agent publishes the telemetry annotation when health changes and on a heartbeat, nothing else.

A simulated hour is 360 ticks, one every 10 s (the default interval): freezegun's frozen clock is
the agent's, and the fake NVML's clock moves with it. With the heartbeat at 5 min +-10 %, a healthy node costs the
API server about 12 writes an hour; a failing GPU costs one more write, in the tick its XID
arrives. The publisher of the real agent (`NodeAnnotationPublisher`) is tested against the
sandbox API server, with faults injected.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import freezegun.api
import jsonschema
import pytest
from freezegun import freeze_time
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler.cluster import Keys
from scheduler.actuator.retry import Backoff
from scheduler.sandbox import SandboxServer
from scheduler.telemetry.agent import Agent, AgentConfig, NodeAnnotationPublisher, PrintPublisher
from scheduler.telemetry.fake_nvml import FakeNvml
from scheduler.telemetry.health import HealthRules
from scheduler.telemetry.nvml import NvmlReader
from scheduler.wire.telemetry import SCHEMA_PATH, TelemetryReport, decode, encode
from tests.sandbox.conftest import api_client_for, node

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)
IGNORE = ["hypothesis", "kubernetes"]
HOUR = 3600
SEED = 2026
TELEMETRY = Keys().telemetry
H200 = json.loads((FIXTURES / "dgx-h200.json").read_text())
FAIL_GPU_3_AT_30_MIN = [{"after_s": 1805, "gpu": 3, "xid": 79}]
HEALTHY_HOUR = [0, 280, 590, 900, 1230, 1510, 1800, 2110, 2420, 2740, 3050, 3370]  # writes, for SEED

# msgspec resolves (and caches, for the whole process) the report's type hints at the first
# decode; under freezegun `datetime` in report.py is FakeDatetime, so a first decode while frozen
# would make every later decode fail ("Expected `FakeDatetime`, got `str`"). Decode once now,
# at import, before anything freezes (reported to the lead).
decode(encode(TelemetryReport(version=1, timestamp=START, total_gpus=0, healthy_gpus=0)))


def frozen_now() -> datetime:
    """freezegun's now as a plain datetime (msgspec refuses to encode freezegun's FakeDatetime).
    Reached through `freezegun.api`, which freezegun never patches."""
    return freezegun.api.real_datetime.fromtimestamp(datetime.now(timezone.utc).timestamp(), timezone.utc)


@pytest.fixture
def frozen():
    with freeze_time(START, ignore=IGNORE) as f:
        yield f


class Recorder:
    """A publisher that keeps every annotation, with the second (since the start) it was written."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, str, str]] = []

    def publish(self, node_name: str, annotation: str) -> None:
        self.writes.append((round((frozen_now() - START).total_seconds()), node_name, annotation))

    @property
    def seconds(self) -> list[int]:
        return [s for s, _, _ in self.writes]

    @property
    def reports(self) -> list[TelemetryReport]:
        return [decode(a) for _, _, a in self.writes]


class Node:
    """One node: a fake NVML, the agent and a publisher. The agent's clock is freezegun's; the
    fake NVML's is a plain seconds cell that `advance` moves with it (cheaper: the fake reads its
    clock on every call)."""

    def __init__(self, frozen, data: dict[str, Any], *, seed: int = SEED, publisher: Any = None,
                 rules: HealthRules | None = None) -> None:
        self.frozen = frozen
        self.seconds = 0.0
        self.nvml = FakeNvml(data, clock=lambda: self.seconds)
        self.publisher = publisher if publisher is not None else Recorder()
        self.agent = Agent(NvmlReader(self.nvml), self.publisher, AgentConfig("n1", rules=rules or HealthRules()),
                           now=frozen_now, rng=random.Random(seed))

    def run_for(self, seconds: int, every: int = 10) -> list[tuple[int, TelemetryReport]]:
        """Tick every `every` seconds; what the Node's annotation says after each tick."""
        said = []
        for _ in range(seconds // every):
            at = round((frozen_now() - START).total_seconds())
            self.agent.tick()
            said.append((at, decode(self.publisher.writes[-1][2])))
            self.advance(every)
        return said

    def advance(self, seconds: float) -> None:
        self.frozen.tick(timedelta(seconds=seconds))
        self.seconds += seconds


def h200(events: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    return {**H200, "events": events or [], **changes}


def not_heartbeats(seconds: list[int], except_at: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """The writes (previous second, second) that are not a heartbeat: a heartbeat comes 5 min
    +-10 % after the write before it, rounded up to the 10 s tick. Writes at `except_at` are
    expected to be something else."""
    return [(before, after) for before, after in zip(seconds, seconds[1:])
            if after not in except_at and not 270 <= after - before <= 330]


# -- how often the annotation is written --------------------------------------------------------
def test_a_healthy_node_writes_12_times_an_hour(frozen):
    n = Node(frozen, h200())

    n.run_for(HOUR)

    assert n.publisher.seconds == HEALTHY_HOUR
    assert n.agent.writes == len(HEALTHY_HOUR) == 12


@pytest.mark.parametrize("seed", [1, 7777])
def test_heartbeats_are_5_minutes_apart_give_or_take_10_percent(frozen, seed):
    """Why 11..13 writes: the first write at 0 s, then a heartbeat every 270..330 s (5 min +-10 %,
    rounded up to the 10 s tick; about 305 s on average). 330 s every time gives 11 in the hour;
    14 would need thirteen gaps in a row at the 270 s minimum."""
    n = Node(frozen, h200(), seed=seed)

    n.run_for(HOUR)

    assert n.publisher.seconds[0] == 0
    assert not_heartbeats(n.publisher.seconds) == []
    assert 11 <= len(n.publisher.seconds) <= 13


def test_a_gpu_failing_mid_hour_is_written_in_the_tick_its_xid_arrives(frozen):
    failing = Node(frozen, h200(FAIL_GPU_3_AT_30_MIN), rules=HealthRules(quiet_period=timedelta(hours=2)))

    failing.run_for(HOUR)

    seconds = failing.publisher.seconds
    assert len(seconds) == len(HEALTHY_HOUR) + 1 == 13
    assert 1810 in seconds  # the XID at 1805 s is read at the 1810 s tick, and written in it
    assert not_heartbeats(seconds, except_at=(1810,)) == []
    at_1810 = failing.publisher.reports[seconds.index(1810)]
    assert (at_1810.healthy_gpus, at_1810.gpus[3].healthy, at_1810.gpus[3].reason) == (7, False, "xid-79")
    assert at_1810.timestamp == START + timedelta(seconds=1810)


def test_a_gpu_that_fails_and_returns_costs_one_write_each_way(frozen):
    n = Node(frozen, h200(FAIL_GPU_3_AT_30_MIN))

    n.run_for(HOUR)

    seconds = n.publisher.seconds
    assert seconds == [0, 280, 590, 900, 1230, 1510, 1800, 1810, 2120, 2410, 2720, 3040, 3360]
    assert not_heartbeats(seconds, except_at=(1810, 2410)) == []
    states = {s: (r.healthy_gpus, r.gpus[3].reason) for s, r in zip(seconds, n.publisher.reports)}
    assert states[1810] == (7, "xid-79")
    assert states[2410] == (8, "")  # 10 min quiet after the 1810 s reading


def test_utilisation_memory_power_or_temperature_changes_alone_never_cause_a_write(frozen):
    rng = random.Random(5)
    busy_events = [{"after_s": s, "gpu": g, "set": {"utilization_gpu": rng.randrange(101),
                                                    "utilization_memory": rng.randrange(101),
                                                    "memory_used_bytes": rng.randrange(150754820096),
                                                    "power_mw": rng.randrange(100000, 700000),
                                                    "temperature_c": rng.randrange(30, 90)}}
                   for s in range(5, HOUR, 10) for g in (0, 5)]
    busy = Node(frozen, h200(busy_events))

    busy.run_for(HOUR)

    assert busy.publisher.seconds == HEALTHY_HOUR  # as if nothing changed
    assert len({r.gpus[0].utilization for r in busy.publisher.reports}) > 1  # though it did


def test_the_annotation_utilisation_is_the_mean_since_the_last_write(frozen):
    events = [{"after_s": s, "gpu": 0, "set": {"utilization_gpu": pct}}
              for s, pct in ((5, 10), (15, 20), (25, 30))]
    n = Node(frozen, h200(events))

    n.run_for(300)

    first, heartbeat = n.publisher.reports
    assert first.gpus[0].utilization == 0.97
    # samples at 10, 20, 30, ..., 280 s: 10 %, 20 %, then 30 % for the 26 others
    assert heartbeat.gpus[0].utilization == round((0.1 + 0.2 + 26 * 0.3) / 28, 2)
    assert heartbeat.gpus[1].utilization == 0.95


def test_a_node_without_nvml_publishes_the_error_and_then_only_heartbeats(frozen):
    n = Node(frozen, {"driver_version": "580.65.06", "init_error": "driver_not_loaded", "gpus": []})

    n.run_for(HOUR)

    first = n.publisher.reports[0]
    assert (first.error, first.total_gpus, first.healthy_gpus, first.gpus) == ("driver-not-loaded", 0, 0, [])
    assert not_heartbeats(n.publisher.seconds) == []


def test_the_annotation_goes_to_the_agents_own_node(frozen):
    n = Node(frozen, h200())

    n.run_for(10)

    assert [name for _, name, _ in n.publisher.writes] == ["n1"]


# -- what is written ------------------------------------------------------------------------------
def annotations_of_every_kind(frozen) -> list[str]:
    """Annotations from the timeline fixture (XIDs, a timeout, a lost GPU, a reset), a node
    whose GPUs support nothing, and a node without a driver."""
    out: list[str] = []
    timeline = json.loads((FIXTURES / "timeline.json").read_text())
    bare = {"driver_version": "580.65.06", "gpus": [{"index": 0, "uuid": "GPU-0", "name": "NVIDIA H200"}]}
    no_driver = json.loads((FIXTURES / "no-driver.json").read_text())
    for data in (timeline, bare, no_driver):
        frozen.move_to(START)
        n = Node(frozen, data)
        n.run_for(600, every=5)
        out += [a for _, _, a in n.publisher.writes]
    return out


def test_every_published_annotation_validates_against_the_committed_schema(frozen):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    annotations = annotations_of_every_kind(frozen)

    assert len(annotations) >= 8
    for annotation in annotations:
        validator.validate(json.loads(annotation))


def test_every_published_annotation_decodes_to_the_report_the_agent_made(frozen):
    n = Node(frozen, json.loads((FIXTURES / "timeline.json").read_text()))
    made = []
    for _ in range(30):
        report = n.agent.tick()
        if report is not None:
            made.append(report)
        n.advance(5)

    assert [decode(a) for _, _, a in n.publisher.writes] == made
    for report in made:
        assert report.timestamp.tzinfo is not None and report.timestamp.microsecond == 0


def test_the_annotation_says_which_gpu_failed_and_why(frozen):
    n = Node(frozen, json.loads((FIXTURES / "dgx-h200-xid79.json").read_text()))

    n.run_for(10)

    (_, _, annotation), = n.publisher.writes
    data = json.loads(annotation)
    assert {k: data[k] for k in ("version", "timestamp", "driver_version", "total_gpus", "healthy_gpus", "error")} \
        == {"version": 1, "timestamp": "2026-11-30T05:00:00Z", "driver_version": "580.65.06", "total_gpus": 8,
            "healthy_gpus": 7, "error": ""}
    assert data["gpus"][3] == {"index": 3, "uuid": "GPU-844b76e8-57f6-5082-8330-7eb042eb2724",
                               "name": "NVIDIA H200", "healthy": False, "reason": "xid-79", "utilization": 0.0,
                               "memory_used_bytes": 0, "memory_total_bytes": 150754820096}


# -- failed publishes are retried ------------------------------------------------------------------
class Flaky(Recorder):
    """Fails the writes whose numbers (1-based) are in `fail`."""

    def __init__(self, fail: set[int], stop: threading.Event | None = None, stop_after: int = 0) -> None:
        super().__init__()
        self.fail = fail
        self.calls = 0
        self.stop = stop
        self.stop_after = stop_after

    def publish(self, node_name: str, annotation: str) -> None:
        self.calls += 1
        if self.calls in self.fail:
            raise ConnectionError("apiserver unreachable")
        super().publish(node_name, annotation)
        if self.stop is not None and len(self.writes) >= self.stop_after:
            self.stop.set()


def test_a_failed_write_of_a_change_is_retried_at_the_next_tick(frozen):
    publisher = Flaky(fail={2})
    n = Node(frozen, h200([{"after_s": 15, "gpu": 3, "xid": 79}]), publisher=publisher)
    n.agent.tick()
    n.advance(10)
    n.agent.tick()  # nothing to say at 10 s
    n.advance(10)

    with pytest.raises(ConnectionError):
        n.agent.tick()  # GPU 3 failed at 15 s; the write at 20 s fails
    n.advance(10)
    retried = n.agent.tick()

    assert retried is not None and retried.gpus[3].reason == "xid-79"
    assert publisher.seconds == [0, 30]


def test_a_failed_heartbeat_is_retried_at_the_next_tick(frozen):
    publisher = Flaky(fail={2})
    n = Node(frozen, h200(), publisher=publisher)
    with pytest.raises(ConnectionError):
        n.run_for(HOUR // 4)  # stops at the failed heartbeat, 280 s
    n.advance(10)

    n.run_for(10)

    assert publisher.seconds == [0, 290]  # the heartbeat due at 280 s failed; written at the next tick


def test_run_survives_a_failed_write_and_writes_at_the_next_tick():
    """The loop itself, on an injected clock: the fake NVML never sleeps, so neither does this."""
    stop = threading.Event()
    publisher = Flaky(fail={1}, stop=stop, stop_after=1)
    seconds = [0.0]
    nvml = FakeNvml(h200([{"after_s": 0, "gpu": 3, "xid": 79}]), clock=lambda: seconds[0])
    agent = Agent(NvmlReader(nvml), publisher, AgentConfig("n1", interval=timedelta(milliseconds=50)),
                  now=lambda: START)

    worker = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    worker.start()
    worker.join(5)
    stop.set()

    assert not worker.is_alive()
    assert publisher.calls == 2
    assert decode(publisher.writes[0][2]).gpus[3].reason == "xid-79"
    assert agent.writes == 1


def test_an_xid_wakes_the_running_agent_before_its_interval_ends():
    """The fake on the real clock: the event wait sleeps until the XID (0.2 s), well before the
    30 s interval would have run out."""
    stop = threading.Event()
    seen: list[tuple[float, TelemetryReport]] = []
    began = time.monotonic()

    class Watch:
        def publish(self, node_name: str, annotation: str) -> None:
            seen.append((time.monotonic() - began, decode(annotation)))
            if len(seen) == 2:
                stop.set()

    nvml = FakeNvml(h200([{"after_s": 0.2, "gpu": 3, "xid": 79}]))
    agent = Agent(NvmlReader(nvml), Watch(), AgentConfig("n1", interval=timedelta(seconds=30)))
    worker = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    worker.start()
    worker.join(5)
    stop.set()

    assert not worker.is_alive()
    (_, first), (after, second) = seen
    assert first.healthy_gpus == 8
    assert (second.healthy_gpus, second.gpus[3].reason) == (7, "xid-79")
    assert 0.15 <= after < 2.0


def test_the_dry_run_publisher_prints_the_annotation_alone(capsys):
    PrintPublisher(sys.stdout).publish("n1", '{"version":1}')

    assert capsys.readouterr() == ('{"version":1}\n', "")


# -- GPU identity: a GPU's health must not depend on reading its UUID this time ---------------------
def test_a_timeout_reading_a_gpu_does_not_forget_that_it_is_unhealthy(frozen):
    """BUG (nvml.py `_read_gpu` + agent.py `report`): a timed-out nvmlDeviceGetUUID leaves
    `uuid == ""`, and the agent keys health by `g.uuid or f"index-{g.index}"`, so for that one
    reading the GPU gets a fresh, healthy state: an XID-79 GPU is published healthy (with uuid
    "") for 10 s, then unhealthy again: two needless writes and a false "healthy"."""
    n = Node(frozen, h200([{"after_s": 0, "gpu": 3, "xid": 79}, {"after_s": 5, "gpu": 3, "timeout": True}]))

    said = n.run_for(30)

    assert [(at, r.gpus[3].uuid, r.gpus[3].healthy) for at, r in said] == \
        [(at, H200["gpus"][3]["uuid"], False) for at in (0, 10, 20)]
    assert n.publisher.seconds == [0]


def test_a_lost_gpu_that_comes_back_waits_out_the_quiet_period(frozen):
    """BUG (same cause): a lost GPU reads no UUID, so its 'lost' state is kept under `index-3`;
    when it comes back (no reset) its own state is the healthy one from before, and it is
    published healthy at once instead of after the quiet period (health.py: conditions that
    persist 'restart the quiet period when they clear')."""
    n = Node(frozen, h200([{"after_s": 25, "gpu": 3, "set": {"lost": True}},
                           {"after_s": 55, "gpu": 3, "set": {"lost": False}}]))

    said = {at: (r.gpus[3].healthy, r.gpus[3].reason) for at, r in n.run_for(700)}

    assert said[20] == (True, "")
    assert said[30] == said[50] == (False, "lost")
    assert said[60] == said[640] == (False, "lost"), "back on the bus, but the quiet period has not run"
    assert said[650] == (True, "")  # lost last seen at 50 s, 10 min quiet


# -- NodeAnnotationPublisher against the sandbox API server -------------------------------------------
@pytest.fixture
def api(server: SandboxServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    with api_client_for(server.write_kubeconfig(tmp_path / "kubeconfig")) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def publisher_for(api: client.ApiClient, sleeps: list[float], attempts: int = 6) -> NodeAnnotationPublisher:
    return NodeAnnotationPublisher(api, TELEMETRY, backoff=Backoff(attempts=attempts, rng=random.Random(3)),
                                   sleep=sleeps.append)


def test_the_publisher_patches_only_the_telemetry_annotation(api, core):
    obj = node("n1", labels={"pool": "h200"})
    obj["metadata"]["annotations"] = {"team": "a"}
    core.create_node(obj)
    before = core.read_node("n1")
    sleeps: list[float] = []

    publisher_for(api, sleeps).publish("n1", '{"version":1}')
    publisher_for(api, sleeps).publish("n1", '{"version":2}')

    after = core.read_node("n1")
    assert after.metadata.annotations == {"team": "a", TELEMETRY: '{"version":2}'}
    assert after.metadata.labels == before.metadata.labels
    assert after.spec == before.spec
    assert after.status.allocatable == before.status.allocatable
    assert sleeps == []


def test_the_publisher_retries_throttling_and_server_errors(api, core, server):
    core.create_node(node("n1"))
    server.faults.add(verb="patch", resource="nodes", sequence=[429, 500])
    sleeps: list[float] = []
    publisher = publisher_for(api, sleeps)

    publisher.publish("n1", '{"version":1}')

    assert core.read_node("n1").metadata.annotations[TELEMETRY] == '{"version":1}'
    assert publisher.retries == 2
    assert server.faults.injected(verb="patch", resource="nodes") == 2
    assert sleeps[0] >= 1.0  # the 429's Retry-After
    assert len(sleeps) == 2 and 0 <= sleeps[1] <= 5.0


def test_the_publisher_gives_up_after_its_attempts(api, core, server):
    core.create_node(node("n1"))
    server.faults.add(verb="patch", resource="nodes", sequence=[500, 500, 500])
    sleeps: list[float] = []

    with pytest.raises(ApiException) as failed:
        publisher_for(api, sleeps, attempts=3).publish("n1", '{"version":1}')

    assert failed.value.status == 500
    assert len(sleeps) == 2


def test_the_publisher_raises_at_once_for_a_node_that_does_not_exist(api):
    sleeps: list[float] = []
    publisher = publisher_for(api, sleeps)

    with pytest.raises(ApiException) as failed:
        publisher.publish("no-such-node", '{"version":1}')

    assert failed.value.status == 404
    assert (publisher.retries, sleeps) == (0, [])


def test_the_agent_writes_its_nodes_annotation_through_the_api(api, core):
    core.create_node(node("n1"))
    sleeps: list[float] = []
    nvml = FakeNvml.from_file(FIXTURES / "dgx-h200-xid79.json", clock=lambda: 0.0)
    agent = Agent(NvmlReader(nvml), publisher_for(api, sleeps), AgentConfig("n1"))

    agent.tick()

    written = decode(core.read_node("n1").metadata.annotations[TELEMETRY])
    assert (written.healthy_gpus, written.gpus[3].reason) == (7, "xid-79")
