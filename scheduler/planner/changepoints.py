"""Change points: the instants at which a plan can change without anything in the cluster
changing (stage starts, additions, grace ends, wind-down steps, lease windows, drain deadlines).
The daemon arms a one-shot job at each; `simulate` prints one plan per change point."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from scheduler.cluster import Snapshot
from scheduler.planner.model import ChangePoint, NodeIntent
from scheduler.planner.nodes import lease_drain_start
from scheduler.planner.statuses import eliminations, linear_steps
from scheduler.policy import Policy


def _granule(policy: Policy, model: str) -> int:
    return next((p.size.gpusPerNode for p in policy.pools if p.gpuModel == model and p.size), 8)


def policy_change_points(policy: Policy) -> list[ChangePoint]:
    points: set[ChangePoint] = set()
    everyone: frozenset[str] = frozenset()
    for stage in policy.stages:
        name = stage.metadata.name
        what = f"round {name} is due (decision pending)" if stage.spec.pending else f"stage {name} starts"
        points.add(ChangePoint(stage.spec.start, what, everyone))
        for e in stage.spec.eligibility():
            if e.from_ is not None and e.from_ > stage.spec.start:
                points.add(ChangePoint(e.from_, f"{e.consortium} becomes eligible ({name})", frozenset({e.consortium})))
    units = {m: policy.units(m) for m in policy.models}
    for name, elim in eliminations(policy):
        if elim.grace_end > elim.at:  # no grace period: the cut itself is the change (the stage start)
            points.add(ChangePoint(elim.grace_end, f"{name}'s wind-down grace period ends", frozenset({name})))
        granule = min((_granule(policy, m) for m in policy.models), default=8)
        for t in linear_steps(elim, granule, units):
            points.add(ChangePoint(t, f"{name}'s linear wind-down drops a node", frozenset({name})))
    timeout = policy.wind_down.drainTimeout
    for pool in policy.pools:
        if pool.availableFrom is not None:
            points.add(ChangePoint(pool.availableFrom, f"pool {pool.name} opens", everyone))
        if pool.availableUntil is not None:
            drain_start = lease_drain_start(pool, timeout)
            assert drain_start is not None  # the pool has a lease end, so a drain start
            points.add(
                ChangePoint(
                    drain_start,
                    f"pool {pool.name} starts draining before its lease ends",
                    everyone,
                )
            )
            points.add(ChangePoint(pool.availableUntil, f"pool {pool.name}'s lease ends", everyone))
    return sorted(points, key=lambda p: (p.at, p.what))


def change_points(
    policy: Policy,
    snapshot: Snapshot | None,
    after: datetime,
    until: datetime | None = None,
    policy_points: list[ChangePoint] | None = None,
    intents: Mapping[str, NodeIntent] | None = None,
) -> list[ChangePoint]:
    """Change points strictly after `after` (and not after `until`), including drain deadlines:
    those of the plan's node intents when given (drains it starts count, drains it ends do not),
    else those the snapshot's nodes carry."""
    points = list(policy_points if policy_points is not None else policy_change_points(policy))
    if intents is not None:
        drains = [
            (i.drain_deadline, name, i.owner) for name, i in intents.items() if i.drain_deadline is not None and i.owner
        ]
    elif snapshot is not None:
        drains = [
            (n.drain_deadline, n.name, n.owner) for n in snapshot.nodes if n.drain_deadline is not None and n.owner
        ]
    else:
        drains = []
    deadlines: dict[datetime, list[tuple[str, str]]] = {}
    for when, name, owner in drains:
        deadlines.setdefault(when, []).append((name, owner))
    for when, nodes in deadlines.items():
        nodes.sort()
        what = f"drain deadline of node {nodes[0][0]}" if len(nodes) == 1 else f"drain deadline of {len(nodes)} nodes"
        points.append(ChangePoint(when, what, frozenset(owner for _, owner in nodes)))
    return sorted(
        {p for p in points if p.at > after and (until is None or p.at <= until)}, key=lambda p: (p.at, p.what)
    )
