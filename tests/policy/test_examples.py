"""docs/examples/: every illustrative policy loads without a warning, replays, and does what its
README row says."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.cluster import decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.planner.simulate import simulate
from scheduler.policy import load_policy
from tests.builders import t
from tests.keys import KEYS

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


def replay(name: str, start: str, end: str):
    policy = load_policy(EXAMPLES / name)
    return simulate(policy, decode_snapshot(dumps(builtin_cluster(policy)), KEYS), t(start), t(end), KEYS)


def held(step, team: str) -> int:
    return step.plan.consortium(team).allocated_gpus


def at(steps, when: str):
    return [s for s in steps if s.at <= t(when)][-1]


def test_the_readme_lists_every_example_folder():
    readme = (EXAMPLES / "README.md").read_text()
    assert FOLDERS and all(f"[`{name}/`]({name}/)" in readme for name in FOLDERS)


@pytest.mark.parametrize("name", FOLDERS)
def test_every_example_loads_without_warnings_and_replays(name):
    policy = load_policy(EXAMPLES / name)
    assert policy.warnings == ()
    steps = replay(name, "2025-12-31 00:00", "2026-06-01 00:00")
    assert len(steps) > 1


def test_linear_wind_down_halves_in_fifteen_days_and_ends_in_thirty():
    steps = replay("linear-wind-down", "2026-01-01 00:00", "2026-04-01 00:00")
    assert held(at(steps, "2026-01-31 23:00"), "blue") == 128
    assert 56 <= held(at(steps, "2026-02-16 12:00"), "blue") <= 72
    assert held(at(steps, "2026-03-04 00:00"), "blue") == 0
    assert held(steps[-1], "red") == held(steps[-1], "green") == 192


def test_grace_period_keeps_a_quarter_for_two_weeks():
    steps = replay("grace-period", "2026-01-01 00:00", "2026-03-01 00:00")
    assert held(at(steps, "2026-02-10 00:00"), "south") == 32
    assert held(at(steps, "2026-02-16 00:00"), "south") == 0
    assert held(steps[-1], "north") == 224


def test_government_h200_meets_a_units_quota_on_both_models_once_the_h200_pool_opens():
    steps = replay("government-h200", "2026-01-01 00:00", "2026-04-01 00:00")
    west_before = at(steps, "2026-02-01 00:00").plan.consortium("west")
    assert west_before.allocated == {"B200": 64} and west_before.short == {"units": 256}
    assert "no pool" not in west_before.short_reason
    west_after = steps[-1].plan.consortium("west")
    assert west_after.allocated == {"B200": 64, "H200": 256} and west_after.short == {}
