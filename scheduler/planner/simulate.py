"""Replay a timeline: plan, apply the plan to the snapshot, move to the next change point.

`apply` is what a perfectly obedient cluster would look like after the actuator wrote the plan.
`simulate` assumes every assigned node is busy (its GPU pods only stop when evicted), so drains
complete at their deadline, as on a fully used fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from scheduler.cluster import KEYS, GpuPod, Keys, Namespace, Node, Snapshot, Taint
from scheduler.planner.changepoints import change_points, policy_change_points
from scheduler.planner.model import ASSIGN, ASSIGNED, DRAIN, DRAINING, EVICT, ChangePoint, NodeIntent, Plan
from scheduler.planner.plan import plan as make_plan
from scheduler.policy import Policy

SIMULATED_POD_PREFIX = "simulated-job-"


def node_after(node: Node, intent: NodeIntent, keys: Keys = KEYS) -> Node:
    """The node as it should look once the plan's intent for it is written."""
    labels = dict(node.labels)
    annotations = dict(node.annotations)
    for key in (keys.drain_started, keys.drain_deadline, keys.drain_reason):
        annotations.pop(key, None)
    taints = [t for t in node.taints if t.key not in (keys.consortium, keys.draining_taint)]
    if intent.owner:
        labels[keys.consortium] = intent.owner
        taints.append(Taint(keys.consortium, intent.owner, "NoSchedule"))
    else:
        labels.pop(keys.consortium, None)
    labels[keys.node_state] = intent.state
    if intent.state == DRAINING:
        taints.append(Taint(keys.draining_taint, "true", "NoSchedule"))
        annotations[keys.drain_started] = intent.drain_started.isoformat()
        annotations[keys.drain_deadline] = intent.drain_deadline.isoformat()
        if intent.drain_reason:
            annotations[keys.drain_reason] = intent.drain_reason
    return node.with_(labels=MappingProxyType(labels), annotations=MappingProxyType(annotations),
                      owner=intent.owner, state=intent.state,
                      drain_started=intent.drain_started if intent.state == DRAINING else None,
                      drain_deadline=intent.drain_deadline if intent.state == DRAINING else None,
                      taints=tuple(sorted(taints, key=lambda t: (t.key, t.value, t.effect))))


def apply(snapshot: Snapshot, plan: Plan, policy: Policy, *, busy: bool = True, keys: Keys = KEYS) -> Snapshot:
    evicted = {a.node for a in plan.actions if a.action == EVICT}
    assigned = {a.node: a.consortium for a in plan.actions if a.action == ASSIGN}
    nodes = []
    for node in snapshot.nodes:
        intent = plan.node_intents.get(node.name)
        if intent is None or _matches(node, intent):
            nodes.append(node)
        else:
            nodes.append(node_after(node, intent, keys))
    pods = [p for p in snapshot.pods if p.node not in evicted]
    if busy:
        have = {p.node for p in pods}
        by_name = {n.name: n for n in nodes}
        for name, owner in sorted(assigned.items()):
            c = policy.consortium(owner)
            if name not in have and c is not None and by_name[name].gpus > 0:
                ns = c.namespaces[0] if c.namespaces else owner
                pods.append(GpuPod(ns, f"{SIMULATED_POD_PREFIX}{name}", name, by_name[name].gpus))
    namespaces = dict(snapshot.namespaces)
    for ns, labels in plan.namespace_labels.items():
        current = namespaces.get(ns, Namespace(ns))
        namespaces[ns] = Namespace(ns, MappingProxyType({**current.labels, **labels}),
                                   MappingProxyType({**current.annotations, **plan.namespace_annotations.get(ns, {})}))
    quotas = {**snapshot.quotas, **{ns: str(g) for ns, g in plan.namespace_quotas.items()}}
    return Snapshot(nodes=tuple(nodes), namespaces=namespaces, quotas=quotas,
                    pods=tuple(sorted(pods, key=lambda p: (p.node, p.namespace, p.name))))


def _matches(node: Node, intent: NodeIntent) -> bool:
    return (node.owner == intent.owner and node.state == intent.state
            and node.drain_deadline == (intent.drain_deadline if intent.state == DRAINING else None))


@dataclass
class Step:
    at: datetime
    why: str
    plan: Plan


def settle(policy: Policy, snapshot: Snapshot, at: datetime, *, busy: bool = True, points=None,
           rounds: int = 5) -> tuple[Plan, Snapshot]:
    """Plan and apply at one instant until nothing more changes (evict -> release -> reassign)."""
    actions = []
    plan = make_plan(policy, snapshot, at, policy_points=points)
    for _ in range(rounds):
        actions += plan.actions
        snapshot = apply(snapshot, plan, policy, busy=busy)
        # an eviction, or a drain of a node with no GPU pods, frees a node that the next plan at the
        # same instant releases and gives out again (the daemon does the same on its next reconcile)
        if not any(a.action == EVICT or (a.action == DRAIN and not a.detail.get("gpu_pods")) for a in plan.actions):
            break
        plan = make_plan(policy, snapshot, at, policy_points=points)
    plan.actions = sorted(actions, key=lambda a: a.sort_key())
    return plan, snapshot


def simulate(policy: Policy, snapshot: Snapshot, start: datetime, end: datetime,
             step: timedelta | None = None, *, busy: bool = True, limit: int = 10_000) -> list[Step]:
    """One settled plan at `start` and at every change point up to `end` (and every `step`)."""
    points = policy_change_points(policy)
    steps: list[Step] = []
    at, why = start, "start of the simulation"
    while len(steps) < limit:
        plan, snapshot = settle(policy, snapshot, at, busy=busy, points=points)
        steps.append(Step(at, why, plan))
        upcoming = change_points(policy, snapshot, at, end, policy_points=points)
        tick = at + step if step else None
        candidates: list[ChangePoint] = list(upcoming[:1])
        if tick is not None and tick <= end:
            candidates.append(ChangePoint(tick, f"every {step}"))
        if not candidates:
            break
        first = min(candidates, key=lambda p: p.at)
        whats = sorted({p.what for p in upcoming if p.at == first.at} | ({first.what} if first not in upcoming else set()))
        at, why = first.at, "; ".join(whats)
    return steps
