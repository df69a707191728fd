"""Whole-node placement: who keeps, loses and gains which node (docs/planning.md, Placement).

Sticky: a consortium at or below its target keeps every usable node. Reclaim takes unhealthy,
then idle (fewest GPU pods, lowest utilisation), then outlying nodes (in the blocks where the
team has fewest nodes) and never more than needed. New nodes come from free ones, preferring
the team's own topology blocks, then the fullest free block. A node leaving a team drains first:
it is released only once its GPU pods are gone, evicted at the deadline if need be.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.planner.model import (
    ASSIGN,
    ASSIGNED,
    DRAIN,
    DRAINING,
    EVICT,
    FREE,
    RELEASE,
    UNHEALTHY,
    Action,
    NodeIntent,
)
from scheduler.planner.nodes import NodeView


@dataclass
class Placement:
    intents: dict[str, NodeIntent] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    nodes: dict[str, list[NodeView]] = field(default_factory=lambda: defaultdict(list))
    draining: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # why a team's nodes of a model were sought in a cluster first, by team and model (home_clusters):
    # what a split across clusters is explained with
    homes: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))


class _FreeBlocks:
    """Free usable nodes grouped by topology block, and within a block by size, so that the
    fullest block and the largest node that fits are both found without scanning every node.
    Largest first matches how targets are counted (targets.water_fill)."""

    def __init__(self, views: list[NodeView]):
        self.blocks: dict[tuple[str, str], dict[int, list[NodeView]]] = defaultdict(lambda: defaultdict(list))
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.gpus = 0  # free GPUs in all
        for v in sorted(views, key=lambda v: v.name, reverse=True):  # pop() from the end = lowest name
            self.blocks[v.block][v.gpus].append(v)
            self.counts[v.block] += 1
            self.gpus += v.gpus
        self.heap = [(-n, block) for block, n in self.counts.items()]
        heapq.heapify(self.heap)

    def take_from(self, block: tuple[str, str], need: int) -> NodeView | None:
        sizes = self.blocks.get(block)
        if not sizes:
            return None
        for size in sorted((s for s, nodes in sizes.items() if nodes and s <= need), reverse=True):
            view = sizes[size].pop()
            self.counts[block] -= 1
            self.gpus -= view.gpus
            heapq.heappush(self.heap, (-self.counts[block], block))
            return view
        return None

    def put_back(self, view: NodeView) -> None:
        self.blocks[view.block][view.gpus].append(view)
        self.counts[view.block] += 1
        self.gpus += view.gpus
        heapq.heappush(self.heap, (-self.counts[view.block], view.block))

    def take_fullest(self, need: int) -> NodeView | None:
        skipped = []
        found = None
        while self.heap:
            count, block = heapq.heappop(self.heap)
            if -count != self.counts.get(block, 0) or count == 0:
                continue  # stale entry
            view = self.take_from(block, need)
            if view is not None:
                found = view
                break
            skipped.append((count, block))  # nothing small enough here
        for entry in skipped:
            heapq.heappush(self.heap, entry)
        return found


@dataclass(frozen=True)
class Rules:
    """What placement needs to know besides the nodes and the targets."""

    known: set[str]  # consortia of the policy
    at: datetime
    drain_timeout: dict[str, timedelta]  # per consortium (its round's wind-down may differ)
    default_timeout: timedelta
    lease_ends: dict[str, datetime | None]  # per pool
    # clusters not answering: their nodes stay exactly as last seen (docs/planning.md, Clusters)
    frozen: frozenset[str] = frozenset()
    # per consortium, the instant its drains count from when that is not now: the end of a cut
    # team's grace period. A daemon that was down at the round boundary, or a cluster that could
    # not be reached then, drains with the deadlines the boundary set, not later ones
    drain_from: dict[str, datetime] = field(default_factory=dict)

    def deadline(self, v: NodeView, owner: str, started: datetime) -> datetime:
        """drainTimeout after the drain started, never past the pool's lease end. A function of
        the drain-started annotation, so a restart, or a hand edit of the deadline annotation,
        cannot move it: the annotation is put back."""
        deadline = started + self.drain_timeout.get(owner, self.default_timeout)
        lease_end = self.lease_ends.get(v.pool.name)
        if lease_end is not None and deadline > lease_end:
            deadline = lease_end  # even for a start past the lease end: the lease ends, the drain with it
        return deadline


def place(
    views: list[NodeView],
    targets: dict[str, dict[str, int]],
    known: set[str],
    at: datetime,
    drain_timeout: dict[str, timedelta],
    default_timeout: timedelta,
    lease_ends: dict[str, datetime | None],
    frozen: frozenset[str] = frozenset(),
    drain_from: dict[str, datetime] | None = None,
) -> Placement:
    """Place every GPU model's nodes independently (a quota is per model)."""
    out = Placement()
    rules = Rules(known, at, drain_timeout, default_timeout, lease_ends, frozen, drain_from or {})
    by_model: dict[str, list[NodeView]] = defaultdict(list)
    for v in views:
        by_model[v.pool.gpuModel].append(v)
    for model in sorted(by_model):
        state = _ModelPlacement(model, by_model[model], targets, rules, out)
        state.settle_drains()
        state.reclaim()
        state.fill()
        state.consolidate()
        state.swap_degraded()
        state.finish()
    return out


class _ModelPlacement:
    """Placement of one GPU model's nodes, step by step. `kept` and `draining` say who holds
    what as the steps go; `out` collects intents and actions for every model."""

    def __init__(
        self, model: str, views: list[NodeView], targets: dict[str, dict[str, int]], rules: Rules, out: Placement
    ) -> None:
        self.model = model
        self.views = views
        self.targets = targets
        self.rules = rules
        self.out = out
        self.kept: dict[str, list[NodeView]] = defaultdict(list)
        self.draining: dict[str, list[NodeView]] = defaultdict(list)
        self.free: list[NodeView] = []
        self.pool: _FreeClusters | None = None
        self.pinned: set[str] = set()  # nodes of frozen clusters: counted, never moved
        self.fresh: set[str] = set()  # nodes given out by this plan (fill): not running anything yet

    def target(self, c: str) -> int:
        return self.targets.get(c, {}).get(self.model, 0)

    def held(self, c: str) -> int:
        return sum(v.gpus for v in self.kept.get(c, []))

    def drain(self, v: NodeView, owner: str, reason: str, *, cut: bool = False) -> None:
        """`cut`: the node is reclaimed because its team's target fell at a cut: its drain counts
        from the cut (Rules.drain_from), not from now; any other drain starts now."""
        at = min(self.rules.drain_from.get(owner, self.rules.at), self.rules.at) if cut else self.rules.at
        deadline = self.rules.deadline(v, owner, at)
        self.out.intents[v.name] = NodeIntent(owner, DRAINING, at, deadline, reason)
        self.out.actions.append(
            Action(
                DRAIN,
                reason,
                consortium=owner,
                node=v.name,
                detail={"deadline": deadline.isoformat(), "gpu_pods": v.gpu_pods},
            )
        )
        self.draining[owner].append(v)

    def release(self, v: NodeView, owner: str, reason: str) -> None:
        self.out.actions.append(Action(RELEASE, reason, consortium=owner, node=v.name))
        if v.usable:
            self.free.append(v)

    # 1. nodes already draining: release when their GPU pods are gone, evict past the deadline;
    #    nodes of unknown teams, or no longer usable, start draining
    def settle_drains(self) -> None:
        rules = self.rules
        for v in self.views:
            n = v.node
            if n.cluster in rules.frozen:
                self.pin(v)
                continue
            if not n.owner:
                if v.usable:
                    self.free.append(v)
                continue
            if n.draining:
                if v.gpu_pods == 0:
                    self.release(v, n.owner, "drain complete: no GPU pods left on the node")
                    continue
                timeout = rules.drain_timeout.get(n.owner, rules.default_timeout)
                started = n.drain_started or (n.drain_deadline - timeout if n.drain_deadline else rules.at)
                started = min(started, rules.at)  # a drain cannot have started in the future
                deadline = rules.deadline(v, n.owner, started)
                self.out.intents[v.name] = NodeIntent(n.owner, DRAINING, started, deadline, n.drain_reason)
                if deadline <= rules.at:
                    self.out.actions.append(
                        Action(
                            EVICT,
                            f"drain deadline {deadline.isoformat()} passed with "
                            f"{v.gpu_pods} GPU pod(s) still on the node",
                            consortium=n.owner,
                            node=v.name,
                            detail={"gpu_pods": v.gpu_pods},
                        )
                    )
                self.draining[n.owner].append(v)
                continue
            if n.owner not in rules.known:
                self.drain(v, n.owner, f"{n.owner!r} is not a consortium of the policy")
            elif not v.usable:
                self.drain(v, n.owner, f"taken back: {v.why_not}")
            else:
                self.kept[n.owner].append(v)

    def pin(self, v: NodeView) -> None:
        """A node of a frozen cluster: whoever holds it keeps it, as it is (draining or not), and a
        free one is given to nobody, until its cluster answers again."""
        n = v.node
        if not n.owner:
            return
        self.pinned.add(v.name)
        if n.draining:
            self.out.intents[v.name] = NodeIntent(n.owner, DRAINING, n.drain_started, n.drain_deadline, n.drain_reason)
            self.draining[n.owner].append(v)
        else:
            self.kept[n.owner].append(v)

    # 2. reclaim from teams above target: unhealthy, idle, outlying first; never more than needed
    def reclaim(self) -> None:
        for c in sorted(self.kept):
            target = self.target(c)
            mine = self.kept[c]
            alloc = held = sum(v.gpus for v in mine)
            if alloc <= target:
                continue
            blocks = _block_counts(mine)
            clusters = _cluster_gpus(mine)  # nodes in the clusters where it holds least go first
            order = sorted(
                (v for v in mine if v.name not in self.pinned),
                key=lambda v: (
                    not v.unhealthy,
                    v.gpu_pods,
                    v.node.utilization or 0.0,
                    clusters[v.node.cluster],
                    blocks[v.block],
                    v.name,
                ),
            )
            removed: list[NodeView] = []
            for v in order:
                if alloc <= target:
                    break
                removed.append(v)
                alloc -= v.gpus
            for v in reversed(removed[:]):  # keep any node that still fits: no more drains than needed
                if alloc + v.gpus <= target:
                    removed.remove(v)
                    alloc += v.gpus
            gone = {v.name for v in removed}
            self.kept[c] = [v for v in mine if v.name not in gone]
            for v in sorted(removed, key=lambda v: v.name):
                why = "unhealthy GPUs" if v.unhealthy else ("idle" if v.gpu_pods == 0 else "least used")
                self.drain(
                    v, c, f"{c} holds {held} {self.model} GPUs, target {target}: reclaiming a node ({why})", cut=True
                )

    # 3. teams below target: first cancel their own drains, then take free nodes, neediest first,
    #    each from the cluster chosen for it (home_clusters) while that cluster has a node that fits
    def fill(self) -> None:
        out, model = self.out, self.model
        self.pool = pool = _FreeClusters(self.free)
        heap: list[tuple[float, str, int, int]] = []
        for c in sorted(set(self.targets) & self.rules.known):
            target = self.target(c)
            alloc = self.held(c)
            if alloc >= target:
                continue
            for v in sorted(self.draining.get(c, []), key=lambda v: v.name):
                if v.usable and v.node.draining and alloc + v.gpus <= target and v.name not in self.pinned:
                    self.draining[c].remove(v)
                    self.kept[c].append(v)
                    alloc += v.gpus
                    out.intents.pop(v.name, None)
                    out.actions[:] = [a for a in out.actions if not (a.action == EVICT and a.node == v.name)]
                    out.actions.append(
                        Action(
                            ASSIGN, f"drain cancelled: {c} is below its {model} target again", consortium=c, node=v.name
                        )
                    )
            if alloc < target:
                heapq.heappush(heap, (alloc / target, c, alloc, target))
        blocks_of = {c: _block_counts(self.kept.get(c, [])) for c in self.targets}
        homes = self.home_clusters({c: target - alloc for _, c, alloc, target in heap}, pool)
        while heap:
            _, c, alloc, target = heapq.heappop(heap)
            need = target - alloc
            view = None
            counts = blocks_of[c]
            for cluster in [homes[c], *pool.others(homes[c])]:
                for block in sorted(
                    (b for b in counts if pool.cluster_of(b) == cluster), key=lambda b: (-counts[b], b)
                ):
                    view = pool.take_from(block, need)
                    if view is not None:
                        break
                if view is None:
                    view = pool.take_fullest(cluster, need)
                if view is not None:
                    break
            if view is None:
                continue
            self.kept[c].append(view)
            self.fresh.add(view.name)
            counts[view.block] = counts.get(view.block, 0) + 1
            alloc += view.gpus
            out.actions.append(
                Action(
                    ASSIGN,
                    f"{c} is below its {model} target ({alloc - view.gpus} of {target} GPUs)",
                    consortium=c,
                    node=view.name,
                )
            )
            if alloc < target:
                heapq.heappush(heap, (alloc / target, c, alloc, target))

    def home_clusters(self, needs: dict[str, int], pool: _FreeClusters) -> dict[str, str]:
        """The cluster each team below target takes its nodes from first. A job cannot span
        clusters, so a team's GPUs of a model belong in one. First, every team that can grow
        where it holds most stays there, and that room is its own (a team is never moved to make
        room for another). Then, largest need first: a team that cannot grow where it is moves
        whole to a cluster with room for all of its target, if one has; a newcomer goes, among
        the clusters whose free GPUs fit its need, to the one whose pools stay open longest (a
        lease ending soon would move it again), then the tightest fit (leaving the roomier ones
        to the next), else to the one with most free. Each choice, and why, is kept for the plan
        to explain a split."""
        if set(pool.clusters) <= {""}:  # a programme of one cluster: there is nothing to choose
            return dict.fromkeys(needs, "")
        free = dict(pool.free_gpus())
        until = self.open_until()
        homes: dict[str, str] = {}
        order = sorted(needs, key=lambda c: (-needs[c], c))

        def choose(c: str, home: str, why: str, reserve: int) -> None:
            homes[c] = home
            self.out.homes[c][self.model] = why
            if home in free:
                free[home] -= min(reserve, free[home])

        where = {c: _cluster_gpus(self.kept.get(c, [])) for c in order}
        stays = {c: min(held, key=lambda k: (-held[k], k)) for c, held in where.items() if held}
        for c in order:
            if c in stays and where[c][stays[c]] + free.get(stays[c], 0) >= self.target(c):
                choose(c, stays[c], f"it holds its {self.model} GPUs in {stays[c]} and is not moved", needs[c])
        for c in order:
            if c in homes:
                continue
            target = self.target(c)
            roomy = [k for k in free if free[k] >= target]  # room there for all of it, not just the need
            if c in stays and roomy:  # it outgrows its cluster, and another has room for all of it
                home = min(roomy, key=lambda k: (-until[k], free[k], k))
                choose(c, home, f"moving to {home}, which has room for all {target}", target)
            elif c in stays:
                choose(
                    c,
                    stays[c],
                    f"it holds its {self.model} GPUs in {stays[c]}; no cluster has room for all {target}",
                    needs[c],
                )
            elif free:
                fits = [k for k in free if free[k] >= needs[c]]
                if fits:
                    home = min(fits, key=lambda k: (-until[k], free[k], k))
                    choose(
                        c, home, f"{home} had {free[home]} free {self.model} GPUs for it when placing began", needs[c]
                    )
                else:
                    home = max(free, key=lambda k: (free[k], until[k], k))
                    choose(c, home, f"no cluster had all {target} free for it", needs[c])
            else:
                choose(c, "", "no cluster had free nodes", 0)
        return homes

    def open_until(self) -> dict[str, float]:
        """Per cluster, when its last pool of this model closes (a lease end; inf: never), as a
        number to sort by."""
        out: dict[str, float] = {}
        for pool, cluster in {(v.pool.name, v.node.cluster) for v in self.views}:
            end = self.rules.lease_ends.get(pool)
            when = end.timestamp() if end is not None else float("inf")
            out[cluster] = max(out.get(cluster, when), when)
        return out

    # 3b. a team whose GPUs of this model are split across clusters, when one of them now has room
    #     for all of them (free nodes left once every team below target was served): it is given
    #     them there and the nodes elsewhere drain (make before break). A job cannot span
    #     clusters, so a split quota is the cause that moves a team; without room it stays put
    def consolidate(self) -> None:
        pool = self.pool
        if pool is None or len(pool.clusters) == 0:
            return
        for c in sorted(self.kept):
            mine = [v for v in self.kept[c] if v.name not in self.pinned]
            held = _cluster_gpus(mine)
            if len(held) < 2 or len(_cluster_gpus(self.kept[c])) != len(held):
                continue  # in one cluster already, or part of it frozen: nothing to move
            free = pool.free_gpus()
            total = sum(held.values())
            for home in sorted(held, key=lambda k: (-held[k], k)):
                outside = total - held[home]
                if free.get(home, 0) < outside:
                    continue
                taken: list[NodeView] = []
                got = 0
                while got < outside:
                    view = pool.take_fullest(home, outside - got)
                    if view is None:
                        break
                    taken.append(view)
                    got += view.gpus
                if got != outside:  # whole nodes do not add up: leave it as it is
                    for view in taken:
                        pool.put_back(view)
                    continue
                leaving = [v for v in mine if v.node.cluster != home]
                self.kept[c] = [v for v in self.kept[c] if v.node.cluster == home] + taken
                given_back = {v.name for v in leaving if v.name in self.fresh}  # given by this plan: just not given
                if given_back:
                    self.out.actions[:] = [
                        a for a in self.out.actions if not (a.action == ASSIGN and a.node in given_back)
                    ]
                    for v in leaving:
                        if v.name in given_back:
                            pool.put_back(v)
                    leaving = [v for v in leaving if v.name not in given_back]
                for view in taken:
                    self.out.actions.append(
                        Action(
                            ASSIGN, f"{c}'s {self.model} GPUs gathered in cluster {home}", consortium=c, node=view.name
                        )
                    )
                for v in sorted(leaving, key=lambda v: v.name):
                    self.drain(v, c, f"{c}'s {self.model} GPUs gathered in cluster {home}: a job cannot span clusters")
                self.out.homes[c][self.model] = f"gathered in {home}"
                break

    # 4. teams still short because GPUs failed on their nodes: swap a degraded node for a healthy
    #    free one when that closes the gap; the degraded node is drained, not yanked
    def swap_degraded(self) -> None:
        pool = self.pool if self.pool is not None else _FreeClusters(self.free)
        for c in sorted(set(self.targets) & self.rules.known):
            target = self.target(c)
            alloc = self.held(c)
            mine = (v for v in self.kept.get(c, []) if v.unhealthy and v.name not in self.pinned)
            for d in sorted(mine, key=lambda v: (v.gpus, v.name)):
                if alloc >= target:
                    break
                need = target - alloc + d.gpus
                view = pool.take_from(d.block, need) or pool.take_fullest(d.node.cluster, need)
                if view is None:
                    break
                if view.gpus <= d.gpus:
                    pool.put_back(view)
                    break
                self.kept[c].remove(d)
                self.kept[c].append(view)
                alloc += view.gpus - d.gpus
                self.out.actions.append(
                    Action(
                        ASSIGN,
                        f"{c} lost GPUs on {d.name} ({d.gpus} of {d.node.allocatable_gpus} healthy): "
                        "a healthy replacement",
                        consortium=c,
                        node=view.name,
                    )
                )
                self.drain(d, c, f"replaced by {view.name}: {d.node.allocatable_gpus - d.gpus} unhealthy GPU(s)")

    # 5. intents for everything else
    def finish(self) -> None:
        out = self.out
        for c, mine in self.kept.items():
            held = NodeIntent(c, ASSIGNED)  # one shared value per team: the plan of a fleet stays small
            for v in mine:
                out.intents[v.name] = held
                out.nodes[c].append(v)
        for c, names in self.draining.items():
            out.draining[c].extend(v.name for v in names)
        for v in self.views:
            if v.name in out.intents:
                continue
            unhealthy = not v.node.ready or v.node.gpus <= 0
            out.intents[v.name] = _UNHEALTHY if unhealthy else _FREE


_FREE, _UNHEALTHY = NodeIntent(None, FREE), NodeIntent(None, UNHEALTHY)  # immutable, so shared


class _FreeClusters:
    """Free usable nodes by cluster, each cluster's as _FreeBlocks. A block (pool, topology
    value) lies in one cluster, since a pool does."""

    def __init__(self, views: list[NodeView]):
        by_cluster: dict[str, list[NodeView]] = defaultdict(list)
        self.where: dict[tuple[str, str], str] = {}
        for v in views:
            by_cluster[v.node.cluster].append(v)
            self.where[v.block] = v.node.cluster
        self.clusters = {k: _FreeBlocks(vs) for k, vs in sorted(by_cluster.items())}

    def cluster_of(self, block: tuple[str, str]) -> str | None:
        return self.where.get(block)

    def free_gpus(self) -> dict[str, int]:
        return {k: fb.gpus for k, fb in self.clusters.items()}

    def others(self, home: str) -> list[str]:
        """The other clusters, most free GPUs first: where a team that must split goes next."""
        if len(self.clusters) < 2:
            return [k for k in self.clusters if k != home]
        free = self.free_gpus()
        return sorted((k for k in self.clusters if k != home), key=lambda k: (-free[k], k))

    def take_from(self, block: tuple[str, str], need: int) -> NodeView | None:
        cluster = self.where.get(block)
        return self.clusters[cluster].take_from(block, need) if cluster is not None else None

    def take_fullest(self, cluster: str, need: int) -> NodeView | None:
        blocks = self.clusters.get(cluster)
        return blocks.take_fullest(need) if blocks is not None else None

    def put_back(self, view: NodeView) -> None:
        self.where[view.block] = view.node.cluster
        self.clusters.setdefault(view.node.cluster, _FreeBlocks([])).put_back(view)


def _cluster_gpus(views: list[NodeView]) -> dict[str, int]:
    gpus: dict[str, int] = defaultdict(int)
    for v in views:
        gpus[v.node.cluster] += v.gpus
    return gpus


def _block_counts(views: list[NodeView]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for v in views:
        counts[v.block] += 1
    return counts
