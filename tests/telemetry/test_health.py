"""Health rules over time: which events make a GPU unhealthy, and when it may count again.

Time is frozen with freezegun and moved by the test (`frozen.tick`, `frozen.move_to`); every
judgement is made at `datetime.now(timezone.utc)`, as the agent makes it. The project's rule for
freezegun: everything imported before freezing, and `ignore=["hypothesis", "kubernetes"]`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import freezegun.api
import pytest
from freezegun import freeze_time

from scheduler.telemetry.agent import Agent, AgentConfig
from scheduler.telemetry.fake_nvml import FakeNvml
from scheduler.telemetry.health import DEFAULT_IGNORED_XIDS, GpuHealth, HealthRules, update
from scheduler.telemetry.nvml import GpuReading, NvmlReader
from scheduler.wire.telemetry import TelemetryReport, decode, encode

FIXTURES = Path(__file__).parent / "fixtures"
START = "2026-11-30T05:00:00Z"
IGNORE = ["hypothesis", "kubernetes"]

# msgspec resolves (and caches, for the whole process) the report's type hints at the first
# decode; under freezegun `datetime` in report.py is FakeDatetime, so a first decode while frozen
# would make every later decode fail ("Expected `FakeDatetime`, got `str`"). Decode once now,
# at import, before anything freezes (reported to the lead).
decode(encode(TelemetryReport(version=1, timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
                              total_gpus=0, healthy_gpus=0)))
QUIET = timedelta(minutes=10)
SECOND = timedelta(seconds=1)


@pytest.fixture
def frozen():
    with freeze_time(START, ignore=IGNORE) as f:
        yield f


class Gpu:
    """One GPU's life as the agent sees it: a reading (and XIDs) judged at the frozen now."""

    def __init__(self, rules: HealthRules | None = None) -> None:
        self.rules = rules or HealthRules()
        self.state = GpuHealth()

    def read(self, xids: tuple[int, ...] = (), reset: bool = False, **readings: Any) -> GpuHealth:
        g = GpuReading(index=0, uuid="GPU-0000", name="NVIDIA H200", **readings)
        return update(self.state, g, list(xids), datetime.now(timezone.utc), self.rules, reset=reset)

    @property
    def healthy(self) -> bool:
        return self.state.healthy

    @property
    def reason(self) -> str:
        return self.state.reason


def fail_and_recover(gpu: Gpu, frozen, quiet: timedelta) -> None:
    """XID 79 now; healthy again exactly `quiet` later (and not a second before)."""
    gpu.read(xids=(79,))
    assert not gpu.healthy
    frozen.tick(quiet - SECOND)
    gpu.read()
    assert not gpu.healthy, f"recovered before the {quiet} quiet period"
    frozen.tick(SECOND)
    gpu.read()
    assert gpu.healthy, f"still unhealthy after the {quiet} quiet period"


# -- which XIDs count ----------------------------------------------------------------------------
def test_xid_79_makes_a_gpu_unhealthy_at_once(frozen):
    gpu = Gpu()
    gpu.read()
    assert gpu.healthy

    gpu.read(xids=(79,))

    assert (gpu.healthy, gpu.reason) == (False, "xid-79")


@pytest.mark.parametrize("xid", [13, 31, 43, 45, 68, 109])
def test_application_xids_do_not_make_a_gpu_unhealthy(frozen, xid):
    gpu = Gpu()

    gpu.read(xids=(xid,))

    assert (gpu.healthy, gpu.reason) == (True, "")


def test_the_default_ignored_xids_are_the_device_plugins():
    assert DEFAULT_IGNORED_XIDS == {13, 31, 43, 45, 68, 109}


@pytest.mark.parametrize("xid", [48, 63, 64, 74, 79, 92, 94, 95, 119, 1234])
def test_every_other_xid_is_critical(frozen, xid):
    gpu = Gpu()

    gpu.read(xids=(xid,))

    assert (gpu.healthy, gpu.reason) == (False, f"xid-{xid}")


def test_an_application_xid_with_a_critical_one_is_unhealthy_for_the_critical_one(frozen):
    gpu = Gpu()

    gpu.read(xids=(13, 79, 43))

    assert gpu.reason == "xid-79"


def test_configured_ignored_xids_replace_the_defaults(frozen):
    rules = HealthRules(ignored_xids=frozenset({79}))
    ignored, no_longer_ignored = Gpu(rules), Gpu(rules)

    ignored.read(xids=(79,))
    no_longer_ignored.read(xids=(13,))

    assert ignored.healthy
    assert (no_longer_ignored.healthy, no_longer_ignored.reason) == (False, "xid-13")


def test_a_configured_critical_xid_counts_even_when_ignored(frozen):
    gpu = Gpu(HealthRules(critical_xids=frozenset({43})))

    gpu.read(xids=(43,))

    assert (gpu.healthy, gpu.reason) == (False, "xid-43")


# -- recovery ------------------------------------------------------------------------------------
def test_a_gpu_is_healthy_again_only_after_the_quiet_period(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,))

    for _ in range(59):  # a reading every 10 s for 9 min 50 s
        frozen.tick(timedelta(seconds=10))
        gpu.read()
        assert not gpu.healthy
    frozen.tick(timedelta(seconds=9))  # 9 min 59 s
    gpu.read()
    assert not gpu.healthy
    frozen.tick(SECOND)  # 10 min
    gpu.read()

    assert (gpu.healthy, gpu.reason) == (True, "")


def test_a_new_critical_xid_restarts_the_quiet_period(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,))
    frozen.tick(timedelta(minutes=8))
    gpu.read(xids=(94,))

    frozen.tick(QUIET - SECOND)
    gpu.read()
    assert (gpu.healthy, gpu.reason) == (False, "xid-94")
    frozen.tick(SECOND)
    gpu.read()
    assert gpu.healthy


def test_an_ignored_xid_while_unhealthy_does_not_restart_the_quiet_period(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,))
    frozen.tick(timedelta(minutes=8))
    gpu.read(xids=(13,))

    frozen.tick(timedelta(minutes=2))
    gpu.read()

    assert gpu.healthy


def test_the_quiet_period_is_configurable(frozen):
    fail_and_recover(Gpu(HealthRules(quiet_period=timedelta(minutes=3))), frozen, timedelta(minutes=3))


# -- flapping ------------------------------------------------------------------------------------
def test_a_second_failure_within_the_flap_window_doubles_the_quiet_period(frozen):
    gpu = Gpu()
    fail_and_recover(gpu, frozen, QUIET)
    frozen.tick(timedelta(minutes=5))

    fail_and_recover(gpu, frozen, 2 * QUIET)


def test_a_failure_after_the_flap_window_gets_the_plain_quiet_period(frozen):
    gpu = Gpu()
    fail_and_recover(gpu, frozen, QUIET)
    frozen.move_to(datetime(2026, 11, 30, 6, 0, 1, tzinfo=timezone.utc))  # 1 h 1 s after the first failure

    fail_and_recover(gpu, frozen, QUIET)


def test_the_quiet_period_doubles_with_each_flap_up_to_max_quiet(frozen):
    gpu = Gpu(HealthRules(flap_window=timedelta(hours=24), max_quiet=timedelta(minutes=30)))

    for quiet in (QUIET, 2 * QUIET, timedelta(minutes=30), timedelta(minutes=30)):  # 40 min capped at 30
        fail_and_recover(gpu, frozen, quiet)
        frozen.tick(timedelta(minutes=1))


def test_a_doubled_quiet_period_holds_after_the_first_failure_leaves_the_flap_window(frozen):
    """BUG (health.py `update`): the flap window is re-evaluated at every reading, so while a GPU
    waits out its doubled quiet period the first failure slides out of the window and the quiet
    period halves again. A second failure 55 min after the first (within the 1 h window) must
    keep the GPU out for 20 min; it comes back after 10 (at 1 h 05 min)."""
    gpu = Gpu()
    fail_and_recover(gpu, frozen, QUIET)           # fails at 05:00, back at 05:10
    frozen.move_to("2026-11-30T05:55:00Z")          # fails again within the hour

    fail_and_recover(gpu, frozen, 2 * QUIET)       # must stay out until 06:15


def test_a_failure_while_already_unhealthy_is_not_a_flap(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,))
    frozen.tick(timedelta(minutes=1))
    gpu.read(xids=(79,))
    frozen.tick(timedelta(minutes=1))
    gpu.read(xids=(48,))

    assert len(gpu.state.turned_bad) == 1
    frozen.tick(QUIET)
    gpu.read()
    assert gpu.healthy


# -- conditions that persist ---------------------------------------------------------------------
PERSISTENT = {
    "lost": ({"lost": True}, "lost"),
    "double-bit ECC": ({"ecc": {("double", "volatile"): 1}}, "ecc-dbe"),
    "row remap failure": ({"remapped_rows_failure": True}, "row-remap-failure"),
    "row remap pending": ({"remapped_rows_pending": True}, "row-remap-pending"),
    "page retirement pending": ({"retired_pages_pending": True}, "page-retirement-pending"),
}


@pytest.mark.parametrize("readings, reason", PERSISTENT.values(), ids=PERSISTENT.keys())
def test_a_persistent_condition_keeps_a_gpu_unhealthy_while_it_lasts(frozen, readings, reason):
    gpu = Gpu()
    for _ in range(13):  # two hours, a reading every 10 minutes: far past any quiet period
        gpu.read(**readings)
        assert (gpu.healthy, gpu.reason) == (False, reason)
        frozen.tick(timedelta(minutes=10))


@pytest.mark.parametrize("readings, reason", PERSISTENT.values(), ids=PERSISTENT.keys())
def test_the_quiet_period_counts_from_the_last_reading_that_saw_the_condition(frozen, readings, reason):
    gpu = Gpu()
    gpu.read(**readings)
    frozen.tick(timedelta(hours=2))
    gpu.read(**readings)  # still there after 2 h: seen at 07:00
    frozen.tick(timedelta(seconds=10))

    gpu.read()  # cleared at 07:00:10
    assert (gpu.healthy, gpu.reason) == (False, reason)
    frozen.move_to(datetime(2026, 11, 30, 7, 9, 59, tzinfo=timezone.utc))
    gpu.read()
    assert not gpu.healthy
    frozen.tick(SECOND)
    gpu.read()
    assert gpu.healthy


def test_volatile_double_bit_ecc_at_the_threshold_is_unhealthy(frozen):
    rules = HealthRules(dbe_threshold=2)
    below, at = Gpu(rules), Gpu(rules)

    below.read(ecc={("double", "volatile"): 1})
    at.read(ecc={("double", "volatile"): 2})

    assert below.healthy
    assert (at.healthy, at.reason) == (False, "ecc-dbe")


def test_aggregate_ecc_errors_from_the_gpus_past_do_not_make_it_unhealthy(frozen):
    gpu = Gpu()

    gpu.read(ecc={("double", "aggregate"): 5, ("single", "aggregate"): 900, ("double", "volatile"): 0})

    assert gpu.healthy


def test_single_bit_ecc_errors_count_only_with_a_threshold(frozen):
    default, strict = Gpu(), Gpu(HealthRules(sbe_threshold=100))

    default.read(ecc={("single", "volatile"): 10_000})
    strict.read(ecc={("single", "volatile"): 100})

    assert default.healthy
    assert (strict.healthy, strict.reason) == (False, "ecc-sbe")


def test_unsupported_readings_are_not_a_fault(frozen):
    gpu = Gpu()

    gpu.read()  # nothing but an identity: every reading "not supported"

    assert gpu.healthy


# -- driver resets -------------------------------------------------------------------------------
def test_a_driver_reset_clears_xid_unhealthiness_at_once(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,))
    frozen.tick(timedelta(minutes=1))

    gpu.read(reset=True)

    assert (gpu.healthy, gpu.reason) == (True, "")


def test_a_driver_reset_does_not_clear_a_persisting_condition(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,), remapped_rows_failure=True)
    frozen.tick(timedelta(minutes=1))

    gpu.read(reset=True, remapped_rows_failure=True)  # remap failures live in the InfoROM

    assert (gpu.healthy, gpu.reason) == (False, "row-remap-failure")


def test_a_driver_reset_with_a_condition_still_there_leaves_the_quiet_period_to_run(frozen):
    gpu = Gpu()
    gpu.read(lost=True)
    frozen.tick(timedelta(minutes=1))
    gpu.read(reset=True, lost=True)  # the reset did not bring it back
    frozen.tick(timedelta(minutes=1))

    gpu.read()  # back, with no reset this time
    assert not gpu.healthy
    frozen.tick(QUIET - timedelta(minutes=1))
    gpu.read()
    assert gpu.healthy


def test_volatile_ecc_counters_dropping_counts_as_a_reset(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,), ecc={("single", "volatile"): 5, ("double", "volatile"): 0})
    frozen.tick(timedelta(minutes=1))

    gpu.read(ecc={("single", "volatile"): 0, ("double", "volatile"): 0})

    assert gpu.healthy


def test_a_double_bit_ecc_error_is_cleared_by_the_reset_that_zeroes_it(frozen):
    gpu = Gpu()
    gpu.read(xids=(48,), ecc={("double", "volatile"): 1})
    frozen.tick(timedelta(minutes=1))
    gpu.read(ecc={("double", "volatile"): 1})
    assert (gpu.healthy, gpu.reason) == (False, "ecc-dbe")
    frozen.tick(timedelta(minutes=1))

    gpu.read(ecc={("double", "volatile"): 0})

    assert gpu.healthy


def test_a_missing_ecc_reading_is_not_a_reset(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,), ecc={("single", "volatile"): 5})
    frozen.tick(timedelta(minutes=1))

    gpu.read(ecc={}, errors={"ecc-single-volatile": "Timeout"})

    assert not gpu.healthy


def test_aggregate_counters_never_signal_a_reset(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,), ecc={("single", "aggregate"): 5})
    frozen.tick(timedelta(minutes=1))

    gpu.read(ecc={("single", "aggregate"): 4})

    assert not gpu.healthy


def test_rising_volatile_counters_are_not_a_reset(frozen):
    gpu = Gpu()
    gpu.read(xids=(79,), ecc={("single", "volatile"): 5})
    frozen.tick(timedelta(minutes=1))

    gpu.read(ecc={("single", "volatile"): 6})

    assert not gpu.healthy


# -- the same rules, through the agent, the fake NVML and frozen time -----------------------------
class Recorder:
    def __init__(self) -> None:
        self.annotations: list[str] = []

    def publish(self, node: str, annotation: str) -> None:
        self.annotations.append(annotation)


def frozen_now() -> datetime:
    """freezegun's now as a plain datetime: msgspec refuses to encode freezegun's FakeDatetime, so
    the agent's default `now` cannot be used under freeze_time (reported to the lead). Reached
    through `freezegun.api`, which freezegun never patches (a name imported here would be)."""
    return freezegun.api.real_datetime.fromtimestamp(datetime.now(timezone.utc).timestamp(), timezone.utc)


def agent_for(data: dict[str, Any], rules: HealthRules | None = None) -> Agent:
    """An agent whose clock, and the fake NVML's, is freezegun's."""
    nvml = FakeNvml(data, clock=lambda: datetime.now(timezone.utc).timestamp())
    return Agent(NvmlReader(nvml), Recorder(), AgentConfig("n1", rules=rules or HealthRules()), now=frozen_now)


def node_spec(events: list[dict[str, Any]], **gpu1: Any) -> dict[str, Any]:
    base = json.loads((FIXTURES / "dgx-h200.json").read_text())
    gpus = base["gpus"][:2]
    gpus[1] = gpus[1] | gpu1
    return {"driver_version": base["driver_version"], "gpus": gpus, "events": events}


def health_of(report, index: int = 1) -> tuple[bool, str]:
    g = report.gpus[index]
    return g.healthy, g.reason


def test_through_the_agent_an_xid_79_counts_at_once_and_the_gpu_returns_after_the_quiet_period(frozen):
    agent = agent_for(node_spec([{"after_s": 30, "gpu": 1, "xid": 79}]))
    healthy = []
    for _ in range(64):  # 0 .. 630 s
        agent.tick()
        healthy.append(decode(agent.publisher.annotations[-1]).gpus[1].healthy)  # what the Node says
        frozen.tick(timedelta(seconds=10))

    assert healthy[:3] == [True, True, True]
    assert healthy[3:63] == [False] * 60  # 30 s .. 620 s: XID at 30 s, quiet until 630 s
    assert healthy[63] is True


def test_through_the_agent_a_driver_reset_clears_an_xid_but_not_a_remap_failure(frozen):
    agent = agent_for(node_spec([{"after_s": 0, "gpu": 0, "xid": 79}, {"after_s": 0, "gpu": 1, "xid": 79},
                                 {"after_s": 60, "reset": True}], remapped_rows_failure=True))
    first = agent.tick()
    assert [health_of(first, 0), health_of(first, 1)] == [(False, "xid-79"), (False, "row-remap-failure")]
    frozen.tick(timedelta(seconds=60))

    after = agent.tick()

    assert agent.last_reading.reopened is True
    assert [health_of(after, 0), health_of(after, 1)] == [(True, ""), (False, "row-remap-failure")]
