"""The cluster after a plan is written: what a perfectly obedient cluster looks like once the
actuator has made every write. Planning knowledge, shared by `simulate` (which replays it) and
the actuator (which writes the difference between a node and `node_after` it)."""

from __future__ import annotations

from types import MappingProxyType

from scheduler.cluster import GpuPod, Keys, Namespace, Node, Snapshot, Taint
from scheduler.planner.model import ASSIGN, DRAINING, EVICT, NodeIntent, Plan
from scheduler.policy import Policy
from scheduler.wire import timestamps

SIMULATED_POD_PREFIX = "simulated-job-"


def node_after(node: Node, intent: NodeIntent, keys: Keys) -> Node:
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
        # placement gives every draining intent the instants its drain started and ends
        assert intent.drain_started is not None and intent.drain_deadline is not None
        taints.append(Taint(keys.draining_taint, "true", "NoSchedule"))
        annotations[keys.drain_started] = timestamps.encode(intent.drain_started)
        annotations[keys.drain_deadline] = timestamps.encode(intent.drain_deadline)
        if intent.drain_reason:
            annotations[keys.drain_reason] = intent.drain_reason
    return node.with_(
        labels=MappingProxyType(labels),
        annotations=MappingProxyType(annotations),
        owner=intent.owner,
        state=intent.state,
        drain_started=intent.drain_started if intent.state == DRAINING else None,
        drain_deadline=intent.drain_deadline if intent.state == DRAINING else None,
        drain_reason=intent.drain_reason if intent.state == DRAINING else None,
        taints=tuple(sorted(taints, key=lambda t: (t.key, t.value, t.effect))),
    )


def apply(snapshot: Snapshot, plan: Plan, policy: Policy, keys: Keys, *, busy: bool = True) -> Snapshot:
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
        namespaces[ns] = Namespace(
            ns,
            MappingProxyType({**current.labels, **labels}),
            MappingProxyType({**current.annotations, **plan.namespace_annotations.get(ns, {})}),
        )
    quotas = {**snapshot.quotas, **{ns: str(g) for ns, g in plan.namespace_quotas.items()}}
    return Snapshot(
        nodes=tuple(nodes),
        namespaces=namespaces,
        quotas=quotas,
        pods=tuple(sorted(pods, key=lambda p: (p.node, p.namespace, p.name))),
    )


def _matches(node: Node, intent: NodeIntent) -> bool:
    return (
        node.owner == intent.owner
        and node.state == intent.state
        and node.drain_deadline == (intent.drain_deadline if intent.state == DRAINING else None)
    )
