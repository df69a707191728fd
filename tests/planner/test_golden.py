"""Golden plans of the real programme: any change to what the planner decides shows up here.

Regenerate the files in tests/planner/golden/ after a deliberate change and review the diff:

    GOLDEN_UPDATE=1 .venv/bin/python -m pytest -q tests/planner/test_golden.py
"""

import json
import os
from pathlib import Path

import pytest

from scheduler.cluster import decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.planner.simulate import simulate
from scheduler.policy import load_policy

from tests.builders import t
from tests.keys import KEYS

GOLDEN = Path(__file__).parent / "golden"
POLICY = load_policy("policies")


def _compare(name: str, value) -> None:
    path = GOLDEN / name
    text = json.dumps(value, indent=1, sort_keys=True) + "\n"
    if os.environ.get("GOLDEN_UPDATE"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run GOLDEN_UPDATE=1 pytest tests/planner/test_golden.py"
    assert json.loads(path.read_text()) == json.loads(text)


@pytest.fixture(scope="module")
def timeline():
    snap = decode_snapshot(dumps(builtin_cluster(POLICY)), KEYS)
    return simulate(POLICY, snap, t("2025-08-01 00:00"), t("2027-01-02 00:00"), KEYS)


def _summary(step):
    p = step.plan
    return {
        "at": p.at.isoformat(), "why": step.why, "stage": p.stage, "decision_pending": p.decision_pending,
        "consortia": {c.name: {"status": c.status, "quota": c.quota, "target": c.target, "allocated": c.allocated,
                               "nodes": len(c.nodes), "draining": len(c.draining_nodes), "short": c.short}
                      for c in p.consortia},
        "pools": {pp.name: [pp.assigned_gpus, pp.free_gpus] for pp in p.pools},
        "actions": sorted({a.action for a in p.actions}),
    }


def test_the_real_programme_timeline(timeline):
    _compare("real-programme-timeline.json", [_summary(s) for s in timeline])


@pytest.mark.parametrize("date", ["2025-08-04 18:00", "2026-01-15 18:00", "2026-02-20 00:00", "2026-07-01 00:00",
                                  "2026-11-30 12:00"])
def test_the_real_programme_plan_at(timeline, date):
    at = t(date)
    step = [s for s in timeline if s.at <= at][-1]
    _compare(f"plan-{date[:10]}.json", step.plan.to_dict())
