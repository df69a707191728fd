"""Replay a timeline: plan, apply the plan to the snapshot, move to the next change point.

`simulate` assumes every assigned node is busy (its GPU pods only stop when evicted), so drains
complete at their deadline, as on a fully used fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.cluster import Keys, Snapshot
from scheduler.planner.apply import apply
from scheduler.planner.changepoints import change_points, policy_change_points
from scheduler.planner.model import DRAIN, EVICT, Action, ChangePoint, Plan
from scheduler.planner.plan import plan as make_plan
from scheduler.policy import Policy


@dataclass
class Step:
    at: datetime
    why: str
    plan: Plan


def settle(
    policy: Policy,
    snapshot: Snapshot,
    at: datetime,
    keys: Keys,
    *,
    busy: bool = True,
    points: list[ChangePoint] | None = None,
    rounds: int = 5,
) -> tuple[Plan, Snapshot]:
    """Plan and apply at one instant until nothing more changes (evict -> release -> reassign)."""
    actions: list[Action] = []
    plan = make_plan(policy, snapshot, at, keys, policy_points=points)
    for _ in range(rounds):
        actions += plan.actions
        snapshot = apply(snapshot, plan, policy, keys, busy=busy)
        # an eviction, or a drain of a node with no GPU pods, frees a node that the next plan at the
        # same instant releases and gives out again (the daemon does the same on its next reconcile)
        if not any(a.action == EVICT or (a.action == DRAIN and not a.detail.get("gpu_pods")) for a in plan.actions):
            break
        plan = make_plan(policy, snapshot, at, keys, policy_points=points)
    plan.actions = sorted(actions, key=lambda a: a.sort_key())
    return plan, snapshot


def simulate(
    policy: Policy,
    snapshot: Snapshot,
    start: datetime,
    end: datetime,
    keys: Keys,
    step: timedelta | None = None,
    *,
    busy: bool = True,
    limit: int = 10_000,
) -> list[Step]:
    """One settled plan at `start` and at every change point up to `end` (and every `step`)."""
    points = policy_change_points(policy)
    steps: list[Step] = []
    at, why = start, "start of the simulation"
    while len(steps) < limit:
        plan, snapshot = settle(policy, snapshot, at, keys, busy=busy, points=points)
        steps.append(Step(at, why, plan))
        upcoming = change_points(policy, snapshot, at, end, policy_points=points)
        tick = at + step if step else None
        candidates: list[ChangePoint] = list(upcoming[:1])
        if tick is not None and tick <= end:
            candidates.append(ChangePoint(tick, f"every {step}"))
        if not candidates:
            break
        first = min(candidates, key=lambda p: p.at)
        whats = sorted(
            {p.what for p in upcoming if p.at == first.at} | ({first.what} if first not in upcoming else set())
        )
        at, why = first.at, "; ".join(whats)
    return steps
