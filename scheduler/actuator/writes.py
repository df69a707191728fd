"""The writes that bring the cluster to a plan: the actuator's decisions, without any I/O.

`desired_writes(plan, snapshot, policy)` compares the plan with the snapshot it was made from
and returns the smallest list of API writes that closes the gap: one merge patch per node or
namespace carrying only what differs, a ResourceQuota create or patch, one Eviction per GPU
pod on a node whose drain deadline has passed, and Events saying what changed. A cluster that
already matches the plan gets no write at all, so a reconcile at steady state costs reads only.

Pure by design (no client, no clock): the daemon, `run --dry-run` and the tests share it, and
`writer.Writer` is the only code that sends them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from scheduler.cluster import Keys, Node, Snapshot, Taint
from scheduler.cluster.labels import RESOURCE_QUOTA_NAME
from scheduler.planner.apply import node_after
from scheduler.planner.model import (
    ACTIVE,
    ASSIGN,
    ASSIGNED,
    DRAIN,
    DRAINING,
    ELIMINATED,
    EVICT,
    INELIGIBLE,
    PENDING,
    RELEASE,
    WINDING_DOWN,
    Action,
    ConsortiumPlan,
    MissingNamespace,
    NodeIntent,
    Plan,
)
from scheduler.policy import Policy
from scheduler.wire import events as event_wire
from scheduler.wire import quota, timestamps

MERGE_PATCH = "application/merge-patch+json"

# Event reasons (the contract in docs/daemon.md)
STAGE_ENTERED, QUOTA_CHANGED, WIND_DOWN_STARTED, ELIMINATED_REASON = (
    "StageEntered",
    "QuotaChanged",
    "WindDownStarted",
    "Eliminated",
)
NODE_ASSIGNED, NODE_DRAINING, NODE_RELEASED = "NodeAssigned", "NodeDraining", "NodeReleased"
DECISION_PENDING, DRIFT_REVERTED = "DecisionPending", "DriftReverted"
QUOTA_SHORT, QUOTA_MET = "QuotaShort", "QuotaMet"
FOREIGN_GPU_POD = "ForeignGpuPod"

# Drift kinds (the `kind` label of gpu_scheduler_drift_reverted_total)
DRIFT_NODE, DRIFT_NAMESPACE, DRIFT_QUOTA = "node", "namespace", "quota"


@dataclass(frozen=True)
class Write:
    """One API request the cluster needs.

    `body` is the merge patch (patch), the object (create) or the Eviction (evict).
    `taint_keys`: the taint keys this node patch manages; its `spec.taints` was computed from the
    snapshot and must be rebased on the live node (foreign taints kept as they are live).
    `reports_on`: keys of the writes an Event describes; the writer skips the Event if one failed.
    `drift`: what kind of hand edit the write reverts ("" when it follows a change of plan).
    """

    resource: str  # nodes, namespaces, resourcequotas, pods/eviction, events
    verb: str  # patch, create, evict
    name: str
    namespace: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    content_type: str = ""
    taint_keys: tuple[str, ...] = ()
    reports_on: tuple[str, ...] = ()
    drift: str = ""
    phase: str = ""  # the ordering group it belongs to (see desired_writes); "" alone

    @property
    def key(self) -> str:
        return f"{self.resource}/{self.namespace}/{self.name}" if self.namespace else f"{self.resource}/{self.name}"

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.verb} {self.resource} {where}"


def desired_writes(
    plan: Plan,
    snapshot: Snapshot,
    policy: Policy,
    keys: Keys,
    written: Mapping[str, str] | None = None,
    reported: AbstractSet[str] = frozenset(),
) -> list[Write]:
    """Every write the plan needs on this snapshot, in the order to send them: free released
    nodes and lower quotas first, evict, give nodes out, then start drains (make before break: a
    team's new nodes are labelled before the nodes it is leaving are tainted; a draining node stays
    its team's, so no node is ever in two hands), raise quotas, and Events last.

    `written`: the `allocation` annotation this replica last left on each namespace, when it
    knows (the reconciler remembers it). A namespace whose annotation differs from it was edited
    by hand, so whatever is put back there is drift, not a change of plan.

    `reported`: the names of the ForeignGpuPod Events already written (the reconciler remembers
    them): each foreign pod is reported once, not at every reconcile."""
    nodes = {n.name: n for n in snapshot.nodes}
    node_writes = {name: w for name, w in _node_writes(plan, nodes, keys)}
    # make before break: a node a team keeps while it drains is tainted only after the team's new
    # nodes are given, so a handover (a lease ending) never leaves it with less than both
    draining = [w for name, w in sorted(node_writes.items()) if plan.node_intents[name].state == DRAINING]
    taking = [w for name, w in sorted(node_writes.items()) if plan.node_intents[name].state not in (ASSIGNED, DRAINING)]
    rank = {name: i for i, name in enumerate(plan.assign_order)}  # placement's order, then by name
    giving = [
        w
        for name, w in sorted(node_writes.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        if plan.node_intents[name].state == ASSIGNED
    ]
    by_hand = {ns for ns in plan.namespace_labels if _edited_by_hand(plan, snapshot, ns, keys, written)}
    namespace_writes = _namespace_writes(plan, snapshot, keys, by_hand)
    quota_writes = _quota_writes(plan, snapshot, by_hand)
    lower = [
        w
        for w in quota_writes
        if w.verb == "patch" and _int(quota.decode(w.body)) < _int(snapshot.quotas.get(w.namespace))
    ]
    raise_ = [w for w in quota_writes if w not in lower]
    evictions = _evictions(plan, snapshot)
    events = _events(plan, snapshot, policy, nodes, node_writes, namespace_writes, quota_writes, keys)
    events += [w for w in foreign_pod_events(plan, snapshot, keys) if w.name not in reported]
    return (
        _phase("taking", taking)
        + _phase("lower", lower)
        + _phase("evict", evictions)
        + _phase(GIVING, giving)
        + _phase("draining", draining)
        + _phase("raise", raise_)
        + _phase("namespaces", namespace_writes)
        + _phase("events", events)
    )


GIVING = "giving"  # sent one by one, in placement's order: a batch cut short is a prefix of the plan
# the phases that take and give nodes and raise quotas; the rest (drains, namespaces, Events)
# follow them. In a programme of several clusters every cluster's making phases go before any
# cluster's breaking ones: a team moving between clusters gets its new nodes, and the quota to
# run on them, before its old ones drain (within one cluster a batch keeps desired_writes' order)
MAKING = ("taking", "lower", "evict", GIVING, "raise")


def _phase(name: str, writes: list[Write]) -> list[Write]:
    """Writes of one ordering group: independent of each other (distinct objects), so the writer
    may send them concurrently; groups stay in order."""
    return [replace(w, phase=name) for w in writes]


# -- nodes -----------------------------------------------------------------------------------------
def _node_writes(plan: Plan, nodes: Mapping[str, Node], keys: Keys) -> Iterable[tuple[str, Write]]:
    acted = {a.node for a in plan.actions if a.node}
    for name in sorted(plan.node_intents):
        node = nodes.get(name)
        if node is None:
            continue
        intent = plan.node_intents[name]
        patch = node_patch(node, node_after(node, intent, keys), keys)
        if patch is None:
            continue
        drift = DRIFT_NODE if name not in acted and _hand_edited(node, intent) else ""
        why = f"node {name} -> {intent.state}" + (f" ({intent.owner})" if intent.owner else "")
        yield (
            name,
            Write(
                "nodes",
                "patch",
                name,
                body=patch,
                content_type=MERGE_PATCH,
                reason=("drift reverted: " if drift else "") + why,
                taint_keys=_taint_keys(keys) if "spec" in patch else (),
                drift=drift,
            ),
        )


def _hand_edited(node: Node, intent: NodeIntent) -> bool:
    """A node the plan leaves as it is, yet differs from it: someone edited what we manage. An
    unlabelled node getting its first labels, or a free node turning unhealthy, is no drift."""
    if node.owner is None and intent.owner is None:
        return node.state is not None and node.state == intent.state
    return True


def _taint_keys(keys: Keys) -> tuple[str, ...]:
    return (keys.consortium, keys.draining_taint)


def node_patch(before: Node, after: Node, keys: Keys) -> dict[str, Any] | None:
    """A merge patch from `before` to `after` on the keys we manage: changed labels and drain
    annotations (null deletes), and the whole `spec.taints` only if our taints differ. Foreign
    labels, annotations and taints are never in it, so never removed."""
    labels = _changed(before.labels, after.labels, (keys.consortium, keys.node_state))
    annotations = _changed(
        before.annotations,
        after.annotations,
        (keys.drain_started, keys.drain_deadline, keys.drain_reason),
        timestamps.same_instant,
    )
    patch: dict[str, Any] = {}
    meta = {k: v for k, v in (("labels", labels), ("annotations", annotations)) if v}
    if meta:
        patch["metadata"] = meta
    if _taint_set(before.taints) != _taint_set(after.taints):
        patch["spec"] = {"taints": [_taint_json(t) for t in after.taints]}
    return patch or None


def _changed(
    before: Mapping[str, str],
    after: Mapping[str, str],
    managed: Iterable[str],
    same: Callable[[str, str], bool] = lambda a, b: a == b,
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in managed:
        old, new = before.get(key), after.get(key)
        if new is None:
            if old is not None:
                out[key] = None
        elif old is None or not same(old, new):
            out[key] = new
    return out


def _taint_set(taints: Iterable[Taint]) -> set[tuple[str, str, str]]:
    return {(t.key, t.value, t.effect) for t in taints}


def _taint_json(t: Taint) -> dict[str, str]:
    out = {"key": t.key, "effect": t.effect}
    if t.value:
        out["value"] = t.value
    return out


# -- namespaces and quotas ---------------------------------------------------------------------------
_HARD = quota.HARD


def _namespace_writes(plan: Plan, snapshot: Snapshot, keys: Keys, by_hand: set[str]) -> list[Write]:
    """Only namespaces that exist: the scheduler deletes none, and creates one only when asked
    (`run --create-namespaces`, a separate write); its labels follow on the next reconcile."""
    out = []
    for ns in sorted(plan.namespace_labels):
        current = snapshot.namespaces.get(ns)
        if current is None:
            continue
        want = plan.namespace_labels[ns]
        stale = [k for k in current.labels if k.startswith(keys.prefix + "/quota-") and k not in want]
        labels = _changed(current.labels, want, [*want, *stale])
        annotations = _changed(
            current.annotations, plan.namespace_annotations.get(ns, {}), plan.namespace_annotations.get(ns, {})
        )
        if not labels and not annotations:
            continue
        meta = {k: v for k, v in (("labels", labels), ("annotations", annotations)) if v}
        drift = DRIFT_NAMESPACE if ns in by_hand else ""
        what = ", ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in sorted(labels.items())) or "allocation"
        out.append(
            Write(
                "namespaces",
                "patch",
                ns,
                body={"metadata": meta},
                content_type=MERGE_PATCH,
                reason=("drift reverted: " if drift else "") + f"set {what}",
                drift=drift,
            )
        )
    return out


def _quota_writes(plan: Plan, snapshot: Snapshot, by_hand: set[str]) -> list[Write]:
    out = []
    for ns in sorted(plan.namespace_quotas):
        if ns not in snapshot.namespaces:
            continue
        want = str(plan.namespace_quotas[ns])
        have = snapshot.quotas.get(ns)
        if have == want:
            continue
        drift = DRIFT_QUOTA if ns in by_hand else ""
        reason = ("drift reverted: " if drift else "") + f"{_HARD} {have if have is not None else '(none)'} -> {want}"
        if have is None:
            out.append(
                Write("resourcequotas", "create", RESOURCE_QUOTA_NAME, ns, quota.encode(ns, want), reason, drift=drift)
            )
        else:
            out.append(
                Write(
                    "resourcequotas",
                    "patch",
                    RESOURCE_QUOTA_NAME,
                    ns,
                    quota.encode_patch(want),
                    reason,
                    MERGE_PATCH,
                    drift=drift,
                )
            )
    return out


def _edited_by_hand(plan: Plan, snapshot: Snapshot, ns: str, keys: Keys, written: Mapping[str, str] | None) -> bool:
    """Is a difference on this namespace (labels, quota) a hand edit rather than a change of plan?
    Yes when the namespace already carries this plan's allocation annotation (the plan did not
    change, so something else did), or when its annotation is not the one this replica last
    wrote there (someone edited the record itself)."""
    current = snapshot.namespaces.get(ns)
    want = plan.namespace_annotations.get(ns, {})
    if current is None or not want:
        return False
    if all(current.annotations.get(k) == v for k, v in want.items()):
        return True
    last = written.get(ns) if written is not None else None
    return last is not None and current.annotations.get(keys.allocation) != last


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else -1
    except ValueError:
        return -1


# -- evictions ---------------------------------------------------------------------------------------
def _evictions(plan: Plan, snapshot: Snapshot) -> list[Write]:
    """One policy/v1 Eviction per GPU pod on a node whose drain deadline has passed: the Eviction
    API honours PodDisruptionBudgets, which a delete would not."""
    evicting = {a.node: a for a in plan.actions if a.action == EVICT}
    out = []
    for pod in snapshot.pods:
        action = evicting.get(pod.node)
        if action is None:
            continue
        out.append(eviction(pod.namespace, pod.name, f"node {pod.node}: {action.reason}"))
    return sorted(out, key=lambda w: (w.namespace, w.name))


def eviction(namespace: str, pod: str, reason: str = "") -> Write:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    return Write("pods/eviction", "evict", pod, namespace, body, reason)


# -- events ------------------------------------------------------------------------------------------
_NODE_EVENTS = {ASSIGN: NODE_ASSIGNED, DRAIN: NODE_DRAINING, EVICT: NODE_DRAINING, RELEASE: NODE_RELEASED}


def _events(
    plan: Plan,
    snapshot: Snapshot,
    policy: Policy,
    nodes: Mapping[str, Node],
    node_writes: Mapping[str, Write],
    namespace_writes: list[Write],
    quota_writes: list[Write],
    keys: Keys,
) -> list[Write]:
    def namespaces_of(consortium: str | None) -> list[str]:
        c = policy.consortium(consortium) if consortium else None
        return [ns for ns in (c.namespaces if c else []) if ns in snapshot.namespaces]

    out: list[Write] = []
    evicted_by_node: dict[str, list[str]] = {}
    for pod in snapshot.pods:
        evicted_by_node.setdefault(pod.node, []).append(eviction(pod.namespace, pod.name).key)

    for a in plan.actions:
        reason = _NODE_EVENTS.get(a.action)
        if reason is None:
            continue
        about = (
            tuple(evicted_by_node.get(a.node, []))
            if a.action == EVICT
            else ((node_writes[a.node].key,) if a.node in node_writes else ())
        )
        for ns in namespaces_of(a.consortium):
            out.append(
                event(
                    plan,
                    ns,
                    reason,
                    _node_message(a, nodes.get(a.node)),
                    subject=f"{a.action}/{a.node}",
                    warning=a.action == EVICT,
                    related=("Node", a.node),
                    reports_on=about,
                    consortium=a.consortium,
                    keys=keys,
                )
            )

    for name, w in node_writes.items():
        if not w.drift:
            continue
        owner = plan.node_intents[name].owner or (nodes[name].owner if name in nodes else None)
        for ns in namespaces_of(owner):
            out.append(
                event(
                    plan,
                    ns,
                    DRIFT_REVERTED,
                    f"node {name}: managed labels or taints were edited; restored to {plan.node_intents[name].state}",
                    subject=f"drift/{name}",
                    warning=True,
                    related=("Node", name),
                    reports_on=(w.key,),
                    consortium=owner,
                    keys=keys,
                )
            )

    ns_write = {w.name: w for w in namespace_writes}
    quota_write = {w.namespace: w for w in quota_writes}
    for c in plan.consortia:
        for ns in namespaces_of(c.name):
            out += _namespace_events(plan, c, snapshot, ns, ns_write.get(ns), quota_write.get(ns), keys)
    return sorted(out, key=lambda w: (w.namespace, w.body["reason"], w.name))


def _node_message(a: Action, node: Node | None) -> str:
    gpus = f" ({node.gpus} GPUs)" if node is not None else ""
    if a.action == ASSIGN:
        return f"node {a.node}{gpus} assigned to {a.consortium}: {a.reason}"
    if a.action == DRAIN:
        return f"node {a.node}{gpus} draining until {a.detail.get('deadline', '?')}: {a.reason}"
    if a.action == EVICT:
        return f"node {a.node}: evicting its GPU pods: {a.reason}"
    return f"node {a.node}{gpus} released by {a.consortium}: {a.reason}"


def _namespace_events(
    plan: Plan,
    c: ConsortiumPlan,
    snapshot: Snapshot,
    ns: str,
    ns_write: Write | None,
    quota_write: Write | None,
    keys: Keys,
) -> list[Write]:
    """Status events only when the namespace's status or stage label changes, QuotaChanged when
    its quota labels or ResourceQuota change, DecisionPending once per undecided round."""
    out: list[Write] = []
    labels = snapshot.namespaces[ns].labels
    want = plan.namespace_labels[ns]
    stage = plan.stage or "none"
    planned = ns_write is not None and not ns_write.drift  # a revert of a hand edit is no news
    status_changed = planned and labels.get(keys.status) != c.status
    stage_changed = planned and labels.get(keys.stage) != want[keys.stage]
    ns_about = (ns_write.key,) if ns_write else ()

    def add(reason: str, message: str, subject: str, about: tuple[str, ...], warning: bool = False) -> None:
        out.append(
            event(
                plan,
                ns,
                reason,
                message,
                subject=subject,
                warning=warning,
                reports_on=about,
                consortium=c.name,
                keys=keys,
            )
        )

    if status_changed and c.status == WINDING_DOWN:
        add(
            WIND_DOWN_STARTED,
            f"{c.name} is not eligible in {stage}: winding down to {c.quota_gpus} GPUs{_next(c)}",
            f"status/{c.status}",
            ns_about,
            warning=True,
        )
    elif status_changed and c.status == ELIMINATED:
        add(
            ELIMINATED_REASON,
            f"{c.name} is eliminated in {stage}: no GPUs; its data and workloads are kept",
            f"status/{c.status}",
            ns_about,
            warning=True,
        )
    elif stage_changed or (status_changed and c.status in (ACTIVE, PENDING, INELIGIBLE)):
        add(STAGE_ENTERED, f"{stage}: {c.name} is {c.status}{_next(c)}", f"stage/{stage}/{c.status}", ns_about)

    quota_keys = [k for k in want if k == keys.quota_gpus or k.startswith(keys.prefix + "/quota-")]
    quota_labels_changed = any(labels.get(k) != want[k] for k in quota_keys)
    if (quota_labels_changed and planned) or (quota_write is not None and not quota_write.drift):
        per_model = ", ".join(f"{m} {n}" for m, n in sorted(c.target.items()) if n) or "none"
        about = ns_about + ((quota_write.key,) if quota_write else ())
        add(
            QUOTA_CHANGED,
            f"quota {labels.get(keys.quota_gpus, '(none)')} -> {c.quota_gpus} GPUs ({per_model}); "
            f"ResourceQuota {_HARD} {snapshot.quotas.get(ns, '(none)')} -> {plan.namespace_quotas[ns]}",
            f"quota/{c.quota_gpus}/{plan.namespace_quotas[ns]}",
            about,
        )

    short_was = labels.get(keys.short_gpus)
    if planned and short_was != want[keys.short_gpus]:
        if c.short:
            what = ", ".join(f"{m} {n}" for m, n in sorted(c.short.items()))
            add(
                QUOTA_SHORT,
                f"{c.name} cannot hold {what} of its quota now: {c.short_reason}",
                f"short/{c.short_gpus}",
                ns_about,
                warning=True,
            )
        elif short_was not in (None, "0"):
            add(QUOTA_MET, f"{c.name} can hold its whole quota again", "short/0", ns_about)

    drifted = [w for w in (ns_write, quota_write) if w is not None and w.drift]
    if drifted:
        add(
            DRIFT_REVERTED,
            "; ".join(w.reason for w in drifted),
            "drift/" + "+".join(w.resource for w in drifted),
            tuple(w.key for w in drifted),
            warning=True,
        )

    if plan.decision_pending and planned:
        # named after the round, not the instant: one per undecided round and namespace
        out.append(
            event(
                plan,
                ns,
                DECISION_PENDING,
                f"the outcome of {plan.pending_stage} is not decided: {stage} stays in force",
                subject=f"pending/{plan.pending_stage}",
                warning=True,
                consortium=c.name,
                keys=keys,
                once=True,
            )
        )
    return out


def _next(c: ConsortiumPlan) -> str:
    nxt = c.next_change
    return f"; next: {nxt.what} at {nxt.at.isoformat()}" if nxt else ""


def event(
    plan: Plan,
    namespace: str,
    reason: str,
    message: str,
    *,
    subject: str,
    keys: Keys,
    warning: bool = False,
    related: tuple[str, str] | None = None,
    reports_on: tuple[str, ...] = (),
    consortium: str | None = None,
    once: bool = False,
    about: tuple[str, str] | None = None,
) -> Write:
    """A core/v1 Event in the consortium's namespace, about that namespace (a legacy Event must
    live in its object's namespace, and consortium engineers read their own namespace)."""
    name = event_wire.name(None if once else plan.at, reason, namespace, subject)
    labels = {keys.consortium: consortium} if consortium else {}
    if plan.cluster:  # one cluster's share of a programme of several: say which cluster
        labels[keys.cluster] = plan.cluster
    body = event_wire.encode(
        event_wire.EventRecord(
            name=name,
            namespace=namespace,
            reason=reason,
            message=message,
            warning=warning,
            at=plan.at,
            labels=labels,
            related=related,
            about=about,
        )
    )
    return Write("events", "create", name, namespace, body, reason, reports_on=reports_on)


def foreign_pod_events(plan: Plan, snapshot: Snapshot, keys: Keys) -> list[Write]:
    """A Warning Event per foreign GPU pod (plan.foreign_pods), in the pod's own namespace and
    about the pod, named once per pod and node: whoever runs it sees why it does not belong
    there. The reconciler sends each once (it remembers what it reported)."""
    out = []
    for p in plan.foreign_pods:
        if p.namespace not in snapshot.namespaces:
            continue
        whose = f"consortium {p.team}'s" if p.team else "no consortium's"
        message = (
            f"pod {p.namespace}/{p.name} uses {p.gpus} GPU(s) on node {p.node}, which is assigned to consortium "
            f"{p.holder}; its namespace is {whose}. Only {p.holder}'s pods may run there: delete the pod, or "
            f"remove its toleration of the {keys.consortium} taint or its nodeName"
        )
        out.append(
            event(
                plan,
                p.namespace,
                FOREIGN_GPU_POD,
                message,
                subject=f"pod/{p.name}/{p.node}",
                keys=keys,
                warning=True,
                related=("Node", p.node),
                consortium=p.team,
                once=True,
                about=("Pod", p.name),
            )
        )
    return out


def policy_invalid_event(namespace: str, digest: str, problems: list[str], at: datetime) -> Write:
    """A Warning Event in the scheduler's own namespace when the policy on disk is invalid: the
    operator who applied it sees why, and that the last good policy stays in force. Named by the
    invalid files' digest, so the same bad policy is reported once, not at every reload check."""
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return _warning_to_operators(
        namespace, "PolicyInvalid", digest, f"policy not applied, the last good one stays in force: {shown}", at, {}
    )


NAMESPACE_MISSING = "NamespaceMissing"


def missing_namespace_event(namespace: str, missing: MissingNamespace, at: datetime, keys: Keys) -> Write:
    """A Warning Event in the scheduler's own namespace: a team holds GPUs in a cluster where its
    namespace does not exist, so neither its ResourceQuota nor its labels can be written there
    (and its engineers have nowhere to run). Named once per cluster and namespace."""
    message = (
        f"consortium {missing.consortium} holds {missing.gpus} GPU(s) in cluster {missing.cluster}, where its "
        f"namespace {missing.namespace} does not exist: create it there (kubectl --context {missing.cluster} "
        f"create namespace {missing.namespace}), or run the scheduler with --create-namespaces"
    )
    labels = {keys.consortium: missing.consortium, keys.cluster: missing.cluster}
    return _warning_to_operators(
        namespace, NAMESPACE_MISSING, f"{missing.cluster}/{missing.namespace}", message, at, labels
    )


def _warning_to_operators(
    namespace: str, reason: str, subject: str, message: str, at: datetime, labels: dict[str, str]
) -> Write:
    """A Warning Event in the scheduler's own namespace, named once per reason and subject."""
    name = event_wire.name(None, reason, namespace, subject)
    body = event_wire.encode(
        event_wire.EventRecord(
            name=name, namespace=namespace, reason=reason, warning=True, at=at, labels=labels, message=message
        )
    )
    return Write("events", "create", name, namespace, body, reason)


def namespace_create(missing: MissingNamespace, keys: Keys) -> Write:
    """Create a consortium's missing namespace (`run --create-namespaces`); its labels and
    ResourceQuota follow on the next reconcile, like any namespace's."""
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": missing.namespace, "labels": {keys.consortium: missing.consortium}},
    }
    return Write(
        "namespaces", "create", missing.namespace, body=body, reason=f"create {missing.consortium}'s namespace"
    )


def dumps(write: Write) -> str:
    """The body as one line of JSON (dry-run logs, debugging)."""
    return json.dumps(write.body, sort_keys=True, separators=(",", ":"))


__all__ = [
    "MERGE_PATCH",
    "NAMESPACE_MISSING",
    "Write",
    "desired_writes",
    "dumps",
    "event",
    "eviction",
    "missing_namespace_event",
    "namespace_create",
    "node_patch",
]
