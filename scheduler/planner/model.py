"""The plan: what each consortium should have at an instant, and the actions that get it there."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import msgspec

ASSIGN, DRAIN, EVICT, RELEASE, SET_QUOTA, LABEL_NAMESPACE = (
    "assign",
    "drain",
    "evict",
    "release",
    "set-quota",
    "label-namespace",
)
ACTION_ORDER = {RELEASE: 0, EVICT: 1, DRAIN: 2, ASSIGN: 3, SET_QUOTA: 4, LABEL_NAMESPACE: 5}

ACTIVE, PENDING, INELIGIBLE, WINDING_DOWN, ELIMINATED = "active", "pending", "ineligible", "winding-down", "eliminated"
STATUSES = (ACTIVE, PENDING, INELIGIBLE, WINDING_DOWN, ELIMINATED)

# node-state label values
ASSIGNED, DRAINING, FREE, UNHEALTHY = "assigned", "draining", "free", "unhealthy"


class Action(msgspec.Struct, frozen=True, gc=False, eq=False):
    """One step of a plan. A struct (a plan that drains thousands of nodes makes one per node);
    two are equal when they do the same to the same object for the same reason, whatever their
    `detail` says."""

    action: str
    reason: str
    consortium: str = ""
    node: str = ""
    namespace: str = ""
    detail: dict[str, Any] = {}

    def _identity(self) -> tuple[str, str, str, str, str]:
        return (self.action, self.reason, self.consortium, self.node, self.namespace)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def sort_key(self) -> tuple[int, str, str, str]:
        return (ACTION_ORDER[self.action], self.node, self.namespace, self.consortium)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "node": self.node,
            "namespace": self.namespace,
            "consortium": self.consortium,
            "reason": self.reason,
        }
        out.update(self.detail)
        return out


class NodeIntent(msgspec.Struct, frozen=True, gc=False):
    """Desired ownership of one node after the plan (what the actuator and simulate apply); a
    struct, as a plan that drains thousands of nodes makes one for each."""

    owner: str | None
    state: str
    drain_started: datetime | None = None
    drain_deadline: datetime | None = None
    drain_reason: str | None = None


@dataclass(frozen=True)
class ChangePoint:
    at: datetime
    what: str
    consortia: frozenset[str] = frozenset()  # empty: affects everyone

    def to_dict(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "what": self.what}


@dataclass(frozen=True)
class ForeignPod:
    """A GPU pod on a node held by `holder` that is not `holder`'s: it tolerated the team's taint
    or named the node itself. `team` is the consortium of its namespace (None: no team's)."""

    namespace: str
    name: str
    node: str
    gpus: int
    holder: str
    team: str | None


@dataclass
class ConsortiumPlan:
    name: str
    status: str
    quota: dict[str, int]
    target: dict[str, int]
    allocated: dict[str, int]
    nodes: list[str]
    draining_nodes: list[str]
    namespaces: list[str]
    next_change: ChangePoint | None = None
    used: dict[str, int] = field(default_factory=dict)  # GPUs requested by unfinished pods on its nodes
    # the quota no plan can give it now (shortfall.py): per model in GPUs, or {"units": n}
    short: dict[str, int] = field(default_factory=dict)
    short_reason: str = ""
    # GPUs of its assigned, non-draining nodes by cluster, then model (a programme of one cluster:
    # one entry, DEFAULT_CLUSTER unless the policy names it)
    clusters: dict[str, dict[str, int]] = field(default_factory=dict)
    # why a model's GPUs sit in more than one cluster ("split-across-clusters: ..."), else empty
    split_reason: str = ""

    @property
    def quota_gpus(self) -> int:
        return sum(self.target.values())

    @property
    def allocated_gpus(self) -> int:
        return sum(self.allocated.values())

    @property
    def short_gpus(self) -> int:
        return sum(self.short.values())

    @property
    def shortfall(self) -> dict[str, int]:
        """Target not placed yet (nodes still draining from another team): transient, unlike `short`."""
        return {
            m: self.target[m] - self.allocated.get(m, 0)
            for m in self.target
            if self.target[m] > self.allocated.get(m, 0)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "quota": dict(sorted(self.quota.items())),
            "target": dict(sorted(self.target.items())),
            "allocated": dict(sorted(self.allocated.items())),
            "used": dict(sorted(self.used.items())),
            "short": dict(sorted(self.short.items())),
            "short_reason": self.short_reason or None,
            "clusters": {k: dict(sorted(v.items())) for k, v in sorted(self.clusters.items())},
            "split_reason": self.split_reason or None,
            "nodes": self.nodes,
            "draining_nodes": self.draining_nodes,
            "namespaces": self.namespaces,
            "next_change": self.next_change.to_dict() if self.next_change else None,
        }


@dataclass
class PoolPlan:
    name: str
    gpu_model: str
    capacity_gpus: int
    healthy_gpus: int
    assigned_gpus: int
    free_gpus: int
    nodes: int = 0
    available: bool = True
    cluster: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cluster": self.cluster,
            "gpu_model": self.gpu_model,
            "capacity_gpus": self.capacity_gpus,
            "healthy_gpus": self.healthy_gpus,
            "assigned_gpus": self.assigned_gpus,
            "free_gpus": self.free_gpus,
            "nodes": self.nodes,
            "available": self.available,
        }


@dataclass(frozen=True)
class MissingNamespace:
    """A namespace of a consortium that holds GPUs in `cluster` but does not exist there: its
    ResourceQuota and labels cannot be written (a Warning Event, a metric and a `status` line say
    so; `run --create-namespaces` creates it)."""

    cluster: str
    consortium: str
    namespace: str
    gpus: int


@dataclass(frozen=True)
class ClusterPlan:
    """One Kubernetes cluster of the programme as this plan saw it."""

    name: str
    up: bool  # False: not answering (or its watch stale): frozen, its nodes counted as last seen
    nodes: int
    gpus: int  # healthy GPUs of its pool nodes
    assigned_gpus: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    at: datetime
    stage: str | None
    decision_pending: bool
    pending_stage: str | None
    policy_sha256: str
    consortia: list[ConsortiumPlan]
    pools: list[PoolPlan]
    actions: list[Action]
    next_change: ChangePoint | None = None
    node_intents: dict[str, NodeIntent] = field(default_factory=dict, repr=False)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    namespace_annotations: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    namespace_quotas: dict[str, int] = field(default_factory=dict, repr=False)
    telemetry_stale_nodes: int = 0
    # nodes given out, in the order placement gave them (model by model, neediest team first):
    # writing them in this order makes any prefix of the batch a prefix of the plan, so a batch
    # cut short (a crash, a lost Lease) and planned again continues the same plan
    assign_order: list[str] = field(default_factory=list, repr=False)
    foreign_pods: list[ForeignPod] = field(default_factory=list, repr=False)  # see ForeignPod
    clusters: list[ClusterPlan] = field(default_factory=list)
    missing_namespaces: list[MissingNamespace] = field(default_factory=list)
    cluster: str = field(default="", repr=False)  # set on one cluster's share of the plan (for_cluster)

    def consortium(self, name: str) -> ConsortiumPlan:
        return next(c for c in self.consortia if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "stage": self.stage,
            "decision_pending": self.decision_pending,
            "pending_stage": self.pending_stage,
            "policy_sha256": self.policy_sha256,
            "next_change": self.next_change.to_dict() if self.next_change else None,
            "telemetry_stale_nodes": self.telemetry_stale_nodes,
            "consortia": [c.to_dict() for c in self.consortia],
            "clusters": [c.to_dict() for c in self.clusters],
            "pools": [p.to_dict() for p in self.pools],
            "missing_namespaces": [
                {"cluster": m.cluster, "consortium": m.consortium, "namespace": m.namespace, "gpus": m.gpus}
                for m in self.missing_namespaces
            ],
            "actions": [a.to_dict() for a in self.actions],
        }
