"""plan(policy, snapshot, at) -> Plan: the pure heart of gpu-scheduler.

No clock, no Kubernetes client, no I/O: the same inputs give the same plan, byte for byte.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from scheduler.cluster import Keys, Snapshot
from scheduler.cluster.fleet import qualified
from scheduler.planner.changepoints import change_points, policy_change_points
from scheduler.planner.model import (
    ACTIVE,
    ASSIGN,
    ELIMINATED,
    LABEL_NAMESPACE,
    PENDING,
    SET_QUOTA,
    WINDING_DOWN,
    Action,
    ChangePoint,
    ClusterPlan,
    ConsortiumPlan,
    ForeignPod,
    MissingNamespace,
    NodeIntent,
    Plan,
    PoolPlan,
)
from scheduler.planner.nodes import NodeView, classify, pool_windows, view
from scheduler.planner.placement import Placement, place
from scheduler.planner.shortfall import shortfalls
from scheduler.planner.statuses import Standing, stage_in_force, standings
from scheduler.planner.targets import ModelCapacity, compute_targets, wind_down_targets
from scheduler.policy import UNITS, Policy, Pool, WindDownMode
from scheduler.wire import allocation as allocation_wire

_NO_POOL = Pool(
    name="(no pool)",
    cluster=None,
    gpuModel="(none)",
    nodeSelector={},
    availableFrom=None,
    availableUntil=None,
    topologyKey=None,
    size=None,
)


def plan(
    policy: Policy,
    snapshot: Snapshot,
    at: datetime,
    keys: Keys,
    policy_points: list[ChangePoint] | None = None,
    frozen: frozenset[str] = frozenset(),
    unseen: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
) -> Plan:
    """`frozen`: clusters of the programme that are not answering (docs/planning.md, Clusters):
    their nodes are planned as last seen, and nothing is assigned into or moved out of them.
    `unseen`: for a frozen cluster never read (no last sight of its nodes), what each team holds
    there by its own records (cluster -> consortium -> model -> GPUs): counted as held, so that
    the team is not given its quota a second time elsewhere."""
    if at.tzinfo is None:
        raise ValueError("plan() needs a timezone-aware instant")
    at = at.astimezone(policy.timezone)
    snapshot, stale = snapshot.fresh(at, policy.program.spec.telemetry.staleAfter)
    force = stage_in_force(policy, at)
    stand = standings(policy, at)
    windows = pool_windows(policy, at)
    views, strays = classify(policy, snapshot, at, windows)
    views += [
        view(n, _NO_POOL, (_NO_POOL.name, ""), "the node matches no pool of the policy", 0, False) for n in strays
    ]
    known = {c.name for c in policy.consortia}
    units = {m: policy.units(m) for m in policy.models}

    held: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    frozen_free: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    slots: dict[str, list[tuple[int, str, str | None]]] = {m: [] for m in policy.models}
    for v in views:
        if not v.usable:
            continue
        m = v.pool.gpuModel
        holder = v.node.owner if v.node.owner and not v.node.draining else None
        if holder:
            held[holder][m] += v.gpus
        if v.node.cluster in frozen and (holder is None or stand[holder].status not in (ACTIVE, WINDING_DOWN)):
            if holder is None:
                frozen_free[m][v.node.cluster] += v.gpus
            continue  # can be given to nobody until its cluster answers
        slots[m].append((v.gpus, v.name, holder))
    capacity = {m: ModelCapacity(tuple(slots[m])) for m in policy.models}
    held_plain = {c: dict(per) for c, per in held.items()}

    # GPUs held in clusters never seen since the daemon started (by the teams' own records): they
    # are part of the team's target, counted as held, and not sought again among the nodes seen
    away: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for teams in (unseen or {}).values():
        for team, per in teams.items():
            for m, g in per.items():
                away[team][m] += g
    wd = wind_down_targets(stand, held_plain, units, at)
    targets = _with_away(compute_targets(_less_away(stand, away, units), capacity, units, wd), away, stand)
    short = shortfalls(policy, stand, targets, capacity, windows, frozen_free)
    timeouts = {
        c: (s.elimination.wind_down.drainTimeout if s.elimination else force.wind_down.drainTimeout)
        for c, s in stand.items()
    }
    placement = place(
        views,
        {c: {m: max(0, g - away[c][m]) if c in away else g for m, g in t.items()} for c, t in targets.items()},
        known,
        at,
        timeouts,
        force.wind_down.drainTimeout,
        {p.name: p.availableUntil for p in policy.pools},
        frozen,
        _drain_from(stand, at),
    )
    home = policy.cluster_names[0]  # the cluster of every node in a programme of one

    upcoming = change_points(policy, snapshot, at, policy_points=policy_points, intents=placement.intents)
    consortia: list[ConsortiumPlan] = []
    used, foreign = _used(policy, views, snapshot, placement)
    for c in sorted(policy.consortia, key=lambda c: c.name):
        s = stand[c.name]
        allocated: dict[str, int] = defaultdict(int)
        where: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for v in placement.nodes.get(c.name, []):
            allocated[v.pool.gpuModel] += v.gpus
            where[v.node.cluster or home][v.pool.gpuModel] += v.gpus
        for cluster, teams in (unseen or {}).items():
            for m, g in teams.get(c.name, {}).items():
                allocated[m] += g
                where[cluster][m] += g
        nxt = next((p for p in upcoming if not p.consortia or c.name in p.consortia), None)
        consortia.append(
            ConsortiumPlan(
                name=c.name,
                status=s.status,
                quota=dict(s.quota) if s.status in (ACTIVE, PENDING) else {},
                target=dict(sorted(targets.get(c.name, {}).items())),
                allocated=dict(sorted(allocated.items())),
                nodes=sorted(v.name for v in placement.nodes.get(c.name, [])),
                draining_nodes=sorted(placement.draining.get(c.name, [])),
                namespaces=sorted(c.namespaces),
                next_change=nxt,
                used=used.get(c.name, {}),
                short=dict(short[c.name].amount) if c.name in short else {},
                short_reason=short[c.name].reason if c.name in short else "",
                clusters={k: dict(per) for k, per in where.items()},
                split_reason=_split_reason(where, placement.homes.get(c.name, {})),
            )
        )

    pools = _pool_plans(policy, views, placement.intents, set(windows))
    cluster_plans = _cluster_plans(policy, views, pools, frozen, home)
    stage = force.stage.metadata.name if force.stage else None
    pending = force.pending.metadata.name if force.pending else None
    ns_labels: dict[str, dict[str, str]] = {}
    ns_annotations: dict[str, dict[str, str]] = {}
    ns_quotas: dict[str, int] = {}
    missing: list[MissingNamespace] = []
    written: dict[str, list[str]] = {}  # each consortium's namespaces as the plan names them
    for cp in consortia:
        labels, annotations, gpus = namespace_state(policy, cp, stage, keys, pending)
        written[cp.name] = mine = []
        if not policy.multi_cluster:
            for ns in cp.namespaces:
                ns_labels[ns], ns_annotations[ns], ns_quotas[ns] = labels, annotations, gpus
                mine.append(ns)
            continue
        # several clusters: each namespace of the team in each cluster where it exists or where the
        # team holds GPUs, its ResourceQuota the GPUs held there (a job runs in one cluster)
        for cluster in policy.cluster_names:
            here = sum(cp.clusters.get(cluster, {}).values())
            for ns in cp.namespaces:
                key = qualified(cluster, ns)
                if key not in snapshot.namespaces:
                    if not here or cluster in frozen:  # nothing needed there, or nothing seen of it
                        continue
                    missing.append(MissingNamespace(cluster, cp.name, ns, here))
                ns_labels[key] = {**labels, keys.cluster_gpus: str(here)}
                ns_annotations[key], ns_quotas[key] = annotations, here
                mine.append(key)
    result = Plan(
        at=at,
        stage=stage,
        decision_pending=pending is not None,
        pending_stage=pending,
        policy_sha256=policy.sha256,
        consortia=consortia,
        pools=pools,
        actions=[],
        next_change=upcoming[0] if upcoming else None,
        node_intents=placement.intents,
        namespace_labels=ns_labels,
        namespace_annotations=ns_annotations,
        namespace_quotas=ns_quotas,
        telemetry_stale_nodes=stale,
        assign_order=[a.node for a in placement.actions if a.action == ASSIGN],
        foreign_pods=foreign,
        clusters=cluster_plans,
        missing_namespaces=missing,
    )
    actions = list(placement.actions) + _namespace_actions(result, snapshot, written)
    result.actions = sorted(actions, key=Action.sort_key)
    return result


def _less_away(
    stand: Mapping[str, Standing], away: Mapping[str, Mapping[str, int]], units: Mapping[str, int]
) -> dict[str, Standing]:
    """The active teams' quotas less what they hold in clusters not seen (see plan()): what is
    left to seek among the nodes seen."""
    out = dict(stand)
    for c, per in away.items():
        s = stand.get(c)
        if s is None or s.status != ACTIVE:
            continue
        if UNITS in s.quota:
            quota = {UNITS: max(0, s.quota[UNITS] - sum(g * units.get(m, 1) for m, g in per.items()))}
        else:
            quota = {m: max(0, q - per.get(m, 0)) for m, q in s.quota.items()}
        out[c] = replace(s, quota=quota)
    return out


def _with_away(
    targets: dict[str, dict[str, int]], away: Mapping[str, Mapping[str, int]], stand: Mapping[str, Standing]
) -> dict[str, dict[str, int]]:
    """Targets with the GPUs held in clusters not seen added back (active teams)."""
    for c, per in away.items():
        if c in stand and stand[c].status == ACTIVE:
            mine = targets.setdefault(c, {})
            for m, g in per.items():
                mine[m] = mine.get(m, 0) + g
    return targets


def _drain_from(stand: Mapping[str, Standing], at: datetime) -> dict[str, datetime]:
    """When each cut team's drains count from, if not now: the end of its grace period (the
    step down at the cut itself, for `step`), so that a drain started late (the daemon or the
    node's cluster was down at the boundary) keeps the deadline the boundary set."""
    out: dict[str, datetime] = {}
    for c, s in stand.items():
        e = s.elimination
        if e is None:
            continue
        if s.status == ELIMINATED and e.grace_end <= at:
            out[c] = e.grace_end
        elif s.status == WINDING_DOWN and e.wind_down.mode == WindDownMode.step:
            out[c] = e.at
    return out


def _split_reason(where: Mapping[str, Mapping[str, int]], homes: Mapping[str, str]) -> str:
    """Why a team's GPUs of a model are in more than one cluster, or "" when none is. `homes`:
    per model, why placement sought them where it did (Placement.homes); none when this plan
    placed no node of that model for the team (the split is older, and no cluster has had room
    to gather it since)."""
    parts = []
    for model in sorted({m for per in where.values() for m in per}):
        holding = sorted(
            ((k, per[model]) for k, per in where.items() if per.get(model)), key=lambda kv: (-kv[1], kv[0])
        )
        if len(holding) > 1:
            spread = " and ".join(f"{g} in {k}" for k, g in holding)
            why = homes.get(model, "placed so earlier; a team is not moved between clusters without cause")
            parts.append(f"{model}: {spread} ({why})")
    return "split-across-clusters: " + "; ".join(parts) if parts else ""


def _cluster_plans(
    policy: Policy, views: list[NodeView], pools: list[PoolPlan], frozen: frozenset[str], home: str
) -> list[ClusterPlan]:
    nodes: dict[str, int] = defaultdict(int)
    for v in views:
        nodes[v.node.cluster or home] += 1
    out = []
    for name in policy.cluster_names:
        mine = [p for p in pools if p.cluster == name]
        out.append(
            ClusterPlan(
                name,
                up=name not in frozen,
                nodes=nodes.get(name, 0),
                gpus=sum(p.healthy_gpus for p in mine),
                assigned_gpus=sum(p.assigned_gpus for p in mine),
            )
        )
    return out


def _used(
    policy: Policy, views: list[NodeView], snapshot: Snapshot, placement: Placement
) -> tuple[dict[str, dict[str, int]], list[ForeignPod]]:
    """GPUs requested by each consortium's unfinished pods (the pods of its namespaces) on pool
    nodes, by model: what the team actually runs, next to what it holds. And the foreign pods:
    GPU pods on a node a consortium holds (assigned or draining) that are not that consortium's
    (another team's, or of a namespace no team owns), which the node's owner never sees."""
    holder: dict[str, str] = {}
    for c, vs in placement.nodes.items():
        holder.update((v.name, c) for v in vs)
    for c, names in placement.draining.items():
        holder.update((n, c) for n in names)
    team = {ns: c.name for c in policy.consortia for ns in c.namespaces}
    model = {v.name: v.pool.gpuModel for v in views}
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    foreign: list[ForeignPod] = []
    for pod in snapshot.pods:
        owner, runner = holder.get(pod.node), team.get(pod.namespace)
        if runner is not None and pod.node in model:
            used[runner][model[pod.node]] += pod.gpus
        if owner is not None and runner != owner:
            foreign.append(ForeignPod(pod.namespace, pod.name, pod.node, pod.gpus, owner, runner))
    return {c: dict(sorted(per.items())) for c, per in used.items()}, foreign


def _pool_plans(
    policy: Policy, views: list[NodeView], intents: Mapping[str, NodeIntent], closed: set[str]
) -> list[PoolPlan]:
    stats = {
        p.name: PoolPlan(p.name, p.gpuModel, 0, 0, 0, 0, available=p.name not in closed, cluster=policy.cluster_of(p))
        for p in policy.pools
    }
    for v in views:
        pp = stats.get(v.pool.name)
        if pp is None:
            continue
        pp.nodes += 1
        pp.capacity_gpus += v.node.allocatable_gpus
        if v.node.ready:
            pp.healthy_gpus += v.node.gpus
        if not v.usable:
            continue
        intent = intents.get(v.name)
        if intent is not None and intent.owner and intent.state == "assigned":
            pp.assigned_gpus += v.gpus
        elif intent is None or not intent.owner:
            pp.free_gpus += v.gpus
    return sorted(stats.values(), key=lambda p: p.name)


def namespace_state(
    policy: Policy, c: ConsortiumPlan, stage: str | None, keys: Keys, pending: str | None = None
) -> tuple[dict[str, str], dict[str, str], int]:
    """The labels, annotations and ResourceQuota a consortium's namespaces should carry.
    `pending`: a round that has started but is not decided (`stage` stays in force meanwhile)."""
    labels = {
        keys.consortium: c.name,
        keys.stage: stage or "none",
        keys.status: c.status,
        keys.quota_gpus: str(c.quota_gpus),
        keys.allocated_gpus: str(c.allocated_gpus),
        keys.short_gpus: str(c.short_gpus),
        keys.pending_stage: pending or "none",
    }
    for m in policy.models:
        labels[keys.quota_model(m)] = str(c.target.get(m, 0))
    allocation = allocation_wire.Allocation(
        consortium=c.name,
        status=c.status,
        stage=stage,
        quota=c.quota,
        target=c.target,
        allocated=c.allocated,
        shortfall=c.shortfall,
        short=c.short,
        short_reason=c.short_reason or None,
        pending_stage=pending,
        nodes=len(c.nodes),
        draining_nodes=len(c.draining_nodes),
        next_change=allocation_wire.NextChange(c.next_change.at.isoformat(), c.next_change.what)
        if c.next_change
        else None,
        clusters={k: dict(sorted(v.items())) for k, v in sorted(c.clusters.items())} if policy.multi_cluster else None,
        split_reason=(c.split_reason or None) if policy.multi_cluster else None,
    )
    annotations = {keys.allocation: allocation_wire.encode(allocation)}
    return labels, annotations, c.allocated_gpus


def _namespace_actions(result: Plan, snapshot: Snapshot, written: Mapping[str, list[str]]) -> list[Action]:
    """What the plan changes on each consortium namespace, as actions (for people: the writes
    themselves are the actuator's diff of the same state). `written`: each consortium's
    namespaces as the plan names them (`cluster/name` in a programme of several)."""
    actions: list[Action] = []
    for c in result.consortia:
        for ns in written[c.name]:
            labels, annotations = result.namespace_labels[ns], result.namespace_annotations[ns]
            gpus = result.namespace_quotas[ns]
            current = snapshot.namespaces.get(ns)
            if current is None:
                missing = "namespace not found in the snapshot; "
            else:
                missing = ""
            changed = sorted(k for k, v in labels.items() if current is None or current.labels.get(k) != v)
            ann_changed = current is None or any(current.annotations.get(k) != v for k, v in annotations.items())
            if changed or ann_changed:
                what = ", ".join(f"{k.split('/')[-1]}={labels[k]}" for k in changed) or "allocation annotation"
                actions.append(
                    Action(
                        LABEL_NAMESPACE,
                        f"{missing}set {what}",
                        consortium=c.name,
                        namespace=ns,
                        detail={"labels": {k: labels[k] for k in changed}},
                    )
                )
            if snapshot.quotas.get(ns) != str(gpus):
                was = snapshot.quotas.get(ns)
                actions.append(
                    Action(
                        SET_QUOTA,
                        f"{missing}requests.nvidia.com/gpu {was if was is not None else '(none)'} -> {gpus} "
                        f"(GPUs on {c.name}'s assigned, non-draining nodes)",
                        consortium=c.name,
                        namespace=ns,
                        detail={"gpus": gpus},
                    )
                )
    return actions


__all__ = ["namespace_state", "plan", "policy_change_points"]
