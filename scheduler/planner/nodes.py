"""Which pool each node belongs to, whether it can be given out now, and why not.

Capacity of a node (docs/planning.md) is its healthy GPUs, and 0 when it is NotReady, cordoned, has
no healthy GPU, or its pool is outside its window, including the `drainTimeout` before a lease
ends (so the pool is empty when the lease does end).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import msgspec

from scheduler.cluster import Node, Snapshot
from scheduler.policy import Policy, Pool


class NodeView(msgspec.Struct, frozen=True, gc=False):
    """A node as placement sees it (a struct: one per node of the fleet on every plan)."""

    node: Node
    pool: Pool
    block: tuple[str, str]  # (pool, topology value): placement keeps teams inside few blocks
    usable: bool
    why_not: str  # empty when usable
    gpu_pods: int
    unhealthy: bool  # fewer healthy GPUs than allocatable, or none at all
    # read again and again by placement: stored once rather than recomputed (see view())
    name: str = ""
    gpus: int = 0  # healthy GPUs if usable, else 0


def view(node: Node, pool: Pool, block: tuple[str, str], why_not: str, gpu_pods: int, unhealthy: bool) -> NodeView:
    usable = not why_not
    return NodeView(node, pool, block, usable, why_not, gpu_pods, unhealthy, node.name, node.gpus if usable else 0)


def label_keys(policy: Policy) -> frozenset[str]:
    """The node labels planning reads: every pool's selector keys and topology key (with
    Keys.reading, what decoding keeps)."""
    keys = {k for pool in policy.pools for k in pool.nodeSelector}
    keys |= {pool.topologyKey for pool in policy.pools if pool.topologyKey}
    return frozenset(keys)


def pool_of(node: Node, pools: list[Pool]) -> Pool | None:
    """The first pool (policy order) whose nodeSelector the node's labels satisfy."""
    return PoolMatcher(pools).match(node.labels)


class PoolMatcher:
    """pool_of for many nodes: a node's pool depends only on the values of the labels that some
    selector names, so the answer is remembered per distinct tuple of those values (a handful
    in a real fleet) and each node costs a few dict lookups."""

    def __init__(self, pools: list[Pool]):
        self.pools = pools
        self.keys = tuple(sorted({k for pool in pools for k in pool.nodeSelector}))
        self.seen: dict[tuple[str | None, ...], Pool | None] = {}

    def match(self, labels: Mapping[str, str]) -> Pool | None:
        signature = tuple(map(labels.get, self.keys))
        try:
            return self.seen[signature]
        except KeyError:
            pool = next((p for p in self.pools if all(labels.get(k) == v for k, v in p.nodeSelector.items())), None)
            self.seen[signature] = pool
            return pool


def lease_drain_start(pool: Pool, drain_timeout: timedelta) -> datetime | None:
    return pool.availableUntil - drain_timeout if pool.availableUntil is not None else None


def pool_windows(policy: Policy, at: datetime) -> dict[str, str]:
    """Pools whose nodes cannot be given out at `at`, and why (not open yet, or lease ending)."""
    closed: dict[str, str] = {}
    for pool in policy.pools:
        if pool.availableFrom is not None and at < pool.availableFrom:
            closed[pool.name] = f"pool {pool.name} opens at {pool.availableFrom.isoformat()}"
        elif pool.availableUntil is not None:
            drain_start = lease_drain_start(pool, policy.wind_down.drainTimeout)
            assert drain_start is not None  # the pool has a lease end, so a drain start
            if at >= pool.availableUntil:
                closed[pool.name] = f"pool {pool.name}'s lease ended at {pool.availableUntil.isoformat()}"
            elif at >= drain_start:
                closed[pool.name] = f"pool {pool.name}'s lease ends at {pool.availableUntil.isoformat()}"
    return closed


def classify(
    policy: Policy, snapshot: Snapshot, at: datetime, windows: Mapping[str, str] | None = None
) -> tuple[list[NodeView], list[Node]]:
    """NodeViews of every node in a pool, and the nodes that match no pool (sorted by name).
    `windows`: pool_windows(policy, at), when the caller has it already."""
    pods: dict[str, int] = {}
    for pod in snapshot.pods:
        if pod.node:
            pods[pod.node] = pods.get(pod.node, 0) + 1
    if windows is None:
        windows = pool_windows(policy, at)
    views: list[NodeView] = []
    strays: list[Node] = []
    matcher = PoolMatcher(policy.pools)
    # several clusters: a node can only be in a pool of its own cluster, whatever its labels say
    per_cluster = {c: PoolMatcher(policy.pools_in(c)) for c in policy.cluster_names} if policy.multi_cluster else None
    nowhere = PoolMatcher([])
    for node in snapshot.nodes:
        pool = (per_cluster.get(node.cluster, nowhere) if per_cluster is not None else matcher).match(node.labels)
        if pool is None:
            if node.owner:
                strays.append(node)
            continue
        why = windows.get(pool.name, "")
        gpus = node.gpus
        if not why:
            if not node.ready:
                why = "node is NotReady"
            elif node.unschedulable:
                why = "node is cordoned"
            elif gpus <= 0:
                why = "node has no healthy GPU"
        block = (pool.name, node.labels.get(pool.topologyKey, "") if pool.topologyKey else "")
        views.append(view(node, pool, block, why, pods.get(node.name, 0), gpus < node.allocatable_gpus or gpus == 0))
    return views, strays
