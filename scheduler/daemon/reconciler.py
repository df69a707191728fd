"""One reconcile: read the clusters, plan for now, write the difference. Nothing else.

Pure parts (plan, desired_writes) are computed by the planner and the write builder; this is
the thin edge that reads, times and counts. Only the leader writes; a follower plans and stays
ready (its metrics stay warm) so a take-over costs one reconcile.

A programme of several clusters is read cluster by cluster and planned as one; each cluster
gets its own share of the plan. A cluster that cannot be read is frozen: planned as last seen,
written to not at all, while the others go on (docs/daemon.md, Several clusters).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.actuator.memory import release_freed_memory
from scheduler.actuator.retry import classify, one_line, repeated_failure_level
from scheduler.actuator.watch import ClusterReader
from scheduler.actuator.writer import Writer, WriteReport
from scheduler.actuator.writes import (
    FOREIGN_GPU_POD,
    MAKING,
    Write,
    desired_writes,
    missing_namespace_event,
    namespace_create,
    policy_invalid_event,
)
from scheduler.cluster import Keys, Snapshot
from scheduler.cluster.decode import paused_gc
from scheduler.cluster.fleet import combine
from scheduler.daemon.clock import Clock
from scheduler.daemon.links import ClusterLink
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.policy_source import PolicySource
from scheduler.planner import Plan, plan
from scheduler.planner.clusters import for_cluster
from scheduler.planner.model import DRAINING
from scheduler.planner.nodes import label_keys
from scheduler.policy import Policy
from scheduler.wire import allocation as allocation_wire

log = logging.getLogger(__name__)

# a batch this large (a cold start, a round) leaves megabytes of freed requests and answers
# scattered through the heap, in the write threads' arenas too (memory.py)
RELEASE_AFTER_WRITES = 1000


@dataclass
class Outcome:
    plan: Plan | None
    writes: int = 0
    failed: int = 0
    skipped: str = ""


@dataclass
class Reconciler:
    source: PolicySource
    reader: ClusterReader  # the watch cache when it is trusted, else a fresh list
    clock: Clock
    metrics: Metrics
    writer: Writer  # the daemon's own cluster's: its Events (and, in a programme of one, every write)
    is_leader: Callable[[], bool] = lambda: True
    last: Outcome | None = None
    synced: bool = False
    last_read: float | None = None  # monotonic time of the last successful cluster read
    lock: threading.Lock = field(default_factory=threading.Lock)
    # when each draining node's drain started, as this replica planned it: the drain clock. The
    # annotation only reports it; an edited or deleted one is put back from here (docs/security.md)
    drain_clock: dict[str, datetime] = field(default_factory=dict)
    # after a reconcile that found nothing to write: what it planned from, and until when nothing
    # changes by itself (see _at_rest)
    rest: tuple[str, tuple[int, ...], bool, datetime] | None = None
    # a programme of several clusters: each cluster's link, by name (links.py); empty: the
    # programme's one cluster is `reader` and `writer`
    links: dict[str, ClusterLink] = field(default_factory=dict)
    events_namespace: str = ""  # the scheduler's own namespace, for its own Events ("" none)
    create_namespaces: bool = False  # create a namespace a team needs in a cluster (--create-namespaces)
    missing_reported: set[str] = field(default_factory=set)  # NamespaceMissing Events already written
    unconnected: set[str] = field(default_factory=set)  # clusters of the policy with no link, said once
    _own: ClusterLink | None = field(default=None, repr=False)

    @property
    def keys(self) -> Keys:
        return self.reader.keys

    def _links(self, policy: Policy) -> dict[str, ClusterLink]:
        """The connected clusters by name: the links given, or the programme's one cluster
        through `reader` and `writer`."""
        if self.links:
            return self.links
        if policy.multi_cluster:
            # started on a programme of one, now given several: which of them the daemon's own
            # connection reaches is not known, so none is written until a restart connects them
            return {}
        if self._own is None:
            self._own = ClusterLink(policy.cluster_names[0], self.reader, self.writer)
        self._own.name = policy.cluster_names[0]
        return {self._own.name: self._own}

    def reconcile(self) -> Outcome:
        """Serialised: the periodic job, a change point and a watch event may all ask at once."""
        with self.lock:
            started = time.monotonic()
            try:
                outcome = self._reconcile()
            except Exception as err:
                self.metrics.reconcile_total.labels("error").inc()
                if classify(err) is not None:  # the API answered badly or not at all: one line
                    log.warning("reconcile failed: %s; the next periodic reconcile retries", one_line(err))
                else:  # a bug: the whole traceback
                    log.exception("reconcile failed; the next periodic reconcile retries")
                raise
            finally:
                self.metrics.reconcile_duration.observe(time.monotonic() - started)
            self.metrics.reconcile_total.labels("success" if not outcome.failed else "error").inc()
            if not outcome.failed:
                self.metrics.last_success.set(time.time())
            self.last = outcome
            return outcome

    def _remember(self, link: ClusterLink, share: Plan) -> None:
        """After a reconcile that left every namespace of a cluster as planned, what their records say."""
        key = self.keys.allocation
        link.written = {ns: ann[key] for ns, ann in share.namespace_annotations.items() if key in ann}

    def _keep_drain_clock(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with every draining node's drain start as this replica last planned it,
        whatever its annotations now say: a forged start cannot move the deadline, and deleting
        the annotations cannot restart the clock (the written annotations are put back as drift).
        A replica that has not planned a drain yet trusts what it first sees."""
        if not self.drain_clock:
            return snapshot
        changed = False
        nodes = []
        for node in snapshot.nodes:
            started = self.drain_clock.get(node.name)
            if started is not None and node.draining and node.drain_started != started:
                node = node.with_(drain_started=started)
                changed = True
            nodes.append(node)
        return snapshot.replace(nodes=tuple(nodes)) if changed else snapshot

    def report_invalid_policy(self, namespace: str) -> None:
        """The leader tells operators, with an Event, that the policy on disk was not applied."""
        error = self.source.error
        if error is None or not self.is_leader():
            return
        problems = [str(issue) for issue in error.issues]
        write = policy_invalid_event(namespace, self.source.digest or "", problems, self.clock.now())
        self.writer.apply([write])

    def _at_rest(self, sha256: str, token: tuple[int, ...] | None, leader: bool, at: datetime) -> bool:
        """Nothing to do: the last reconcile wrote nothing, and since then the policy, the watched
        cluster (the cache's version) and the leadership are the same, and no change point (a stage,
        a drain deadline, telemetry going stale) has come. Its plan would come out the same and
        write nothing, so none is made: at rest a fleet of any size costs no CPU (docs/daemon.md)."""
        rest = self.rest
        return rest is not None and token is not None and rest[:3] == (sha256, token, leader) and at < rest[3]

    def _reconcile(self) -> Outcome:
        policy = self.source.policy
        if policy is None:
            return Outcome(None, skipped="no valid policy loaded yet")
        links = self._links(policy)
        token, leader, at = _token(links.values()), self.is_leader(), self.clock.now()
        if self._at_rest(policy.sha256, token, leader, at) and self.last is not None:
            self.last_read = time.monotonic()  # the watches are up and current: as good as a read
            return Outcome(self.last.plan, skipped="nothing changed")
        self.rest = None
        parts, frozen = self._read(policy, links)
        snapshot = parts[policy.cluster_names[0]] if not policy.multi_cluster else combine(parts)
        snapshot = self._keep_drain_clock(snapshot)
        self.synced = True
        self.last_read = time.monotonic()
        unseen = self._unseen(parts, frozen - set(parts))
        with paused_gc():  # a fifth to a third of plan() at 10,000-50,000 nodes is cycle collection
            result = plan(policy, snapshot, at, self.keys, frozen=frozenset(frozen), unseen=unseen)
        self.metrics.observe_plan(result)
        self.drain_clock = {
            name: intent.drain_started
            for name, intent in result.node_intents.items()
            if intent.state == DRAINING and intent.drain_started is not None
        }
        stale_after = policy.program.spec.telemetry.staleAfter
        if not leader:
            self.rest = _rest(policy.sha256, token, leader, result, snapshot, stale_after)
            return Outcome(result, skipped="not the leader")
        batches: list[tuple[ClusterLink, Plan, list[Write]]] = []
        for name, link in links.items():
            if name in frozen or name not in parts:
                continue
            share = for_cluster(result, name) if policy.multi_cluster else result
            with paused_gc():
                writes = desired_writes(share, parts[name], policy, self.keys, link.written, link.reported)
            if self.create_namespaces:
                writes = [namespace_create(m, self.keys) for m in share.missing_namespaces] + writes
            batches.append((link, share, writes))
        events = self._missing_namespace_events(result)
        if not events and not any(writes for _, _, writes in batches):
            for link, share, _ in batches:
                self._remember(link, share)
            self.rest = _rest(policy.sha256, token, leader, result, snapshot, stale_after)
            return Outcome(result)
        done = failed = 0
        # make before break across clusters too: every cluster's nodes given (and taken) before
        # any cluster's drains, so a team moving between clusters never dips (within one cluster
        # the phases of its batch are in that order already)
        halves = (
            [
                [(link, [w for w in writes if (w.phase in MAKING) == making]) for link, _, writes in batches]
                for making in (True, False)
            ]
            if len(batches) > 1
            else [[(link, writes) for link, _, writes in batches]]
        )
        reports: dict[str, list[WriteReport]] = {link.name: [] for link, _, _ in batches}
        for half in halves:
            for link, writes in half:
                if not writes:
                    continue
                link.reader.wrote()
                failed_before = [w.key for r in reports[link.name] for w, _ in r.failed]
                reports[link.name].append(self.writer_report(link, writes, at, failed_before))
        for link, share, _ in batches:
            sent = reports[link.name]
            if not sent:
                self._remember(link, share)
                continue
            done += sum(len(r.done) for r in sent)
            failed += sum(len(r.failed) for r in sent)
            link.reported |= {w.name for r in sent for w in r.done if w.body.get("reason") == FOREIGN_GPU_POD}
            if any(r.failed or r.skipped or r.dry_run for r in sent):
                link.written = None  # not sure what the namespaces carry now: trust the next plan's view
            else:
                self._remember(link, share)
        if events:
            report = self.writer.apply(events, still_allowed=self.is_leader)
            self.missing_reported |= {w.name for w in report.done}
            done, failed = done + len(report.done), failed + len(report.failed)
        if done >= RELEASE_AFTER_WRITES:
            release_freed_memory()  # a batch's requests and answers are gone: give their pages back
        return Outcome(result, writes=done, failed=failed)

    def writer_report(
        self, link: ClusterLink, writes: list[Write], at: datetime, failed_before: list[str]
    ) -> WriteReport:
        """Send one cluster's writes, count them, and log what happened."""
        report = link.writer.apply(writes, still_allowed=self.is_leader, failed_before=failed_before)
        for (resource, verb), n in report.writes.items():
            self.metrics.api_writes_total.labels(resource, verb).inc(n)
        for (resource, verb), n in report.retries.items():
            self.metrics.api_write_retries_total.labels(resource, verb).inc(n)
        for w in report.done:
            if w.drift:
                self.metrics.drift_reverted_total.labels(w.drift).inc()
        where = f" in cluster {link.name}" if self.links else ""
        log.info("reconciled at %s%s: %s", at.isoformat(), where, report.summary())
        return report

    def _read(self, policy: Policy, links: dict[str, ClusterLink]) -> tuple[dict[str, Snapshot], set[str]]:
        """Each cluster's snapshot, and the clusters frozen: not connected, or not answering (they
        count as last seen). A programme of one cluster has nothing to fall back on: its failed
        read fails the reconcile, as it always has."""
        wanted = label_keys(policy)
        parts: dict[str, Snapshot] = {}
        frozen: set[str] = set()
        for name in policy.cluster_names:
            link = links.get(name)
            if link is None:  # no route to it when the daemon started, or added to the policy since
                frozen.add(name)
                if name not in self.unconnected:
                    self.unconnected.add(name)
                    log.warning(
                        "cluster %s of the policy is not connected: frozen; the daemon connects to the policy's "
                        "clusters when it starts (restart it once the cluster can be reached)",
                        name,
                    )
                continue
            link.reader.read_labels(wanted)
            try:
                read = link.reader.read()
            except Exception as err:
                if not policy.multi_cluster or classify(err) is None:
                    raise
                frozen.add(name)
                log.log(
                    repeated_failure_level(link.failures),
                    "cluster %s is not answering (%s): frozen %s, the other clusters go on",
                    name,
                    one_line(err),
                    "as last seen" if link.last is not None else "(not read since the daemon started)",
                )
                link.up, link.failures = False, link.failures + 1
                if link.last is not None:
                    parts[name] = link.last
                continue
            if not link.up:
                log.info("cluster %s answers again: reconciling it", name)
            self.unconnected.discard(name)
            link.up, link.failures = True, 0
            parts[name] = read
            # what a frozen cluster counts as; a programme of one never freezes, and a fleet's
            # snapshot is worth not keeping twice (the watch cache has it)
            link.last = read if policy.multi_cluster else None
        return parts, frozen

    def _unseen(self, parts: dict[str, Snapshot], never_read: set[str]) -> dict[str, dict[str, dict[str, int]]]:
        """For each frozen cluster not read since the daemon started, what each team holds there,
        by the allocation records written on its namespaces in the clusters that were read."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        if not never_read:
            return out
        for snap in parts.values():
            for ns in snap.namespaces.values():
                text = ns.annotations.get(self.keys.allocation)
                if not text:
                    continue
                try:
                    record = allocation_wire.decode(text)
                except ValueError:
                    continue  # edited by hand: another namespace of the team may still say
                for cluster, per in (record.clusters or {}).items():
                    if cluster in never_read and per:
                        out.setdefault(cluster, {})[record.consortium] = dict(per)
        for cluster in sorted(never_read - self.unconnected):
            self.unconnected.add(cluster)  # said once, until it answers
            log.warning(
                "cluster %s has not answered since the daemon started: planned without its nodes, its teams "
                "counted as holding there what their records say (%s)",
                cluster,
                ", ".join(f"{c} {sum(per.values())}" for c, per in sorted(out.get(cluster, {}).items())) or "nothing",
            )
        return out

    def _missing_namespace_events(self, result: Plan) -> list[Write]:
        """A Warning Event in the scheduler's own namespace for each namespace a team needs in a
        cluster where it does not exist (once each; not when the daemon creates them)."""
        if not self.events_namespace or self.create_namespaces:
            return []
        events = [
            missing_namespace_event(self.events_namespace, m, result.at, self.keys) for m in result.missing_namespaces
        ]
        return [w for w in events if w.name not in self.missing_reported]


def _token(links: Iterable[ClusterLink]) -> tuple[int, ...] | None:
    """The watch caches' versions, or None when any read would not come from a cache."""
    tokens = [link.reader.token() for link in links]
    return None if any(t is None for t in tokens) else tuple(t for t in tokens if t is not None)


def _rest(
    sha256: str, token: tuple[int, ...] | None, leader: bool, result: Plan, snapshot: Snapshot, stale_after: timedelta
) -> tuple[str, tuple[int, ...], bool, datetime] | None:
    """What a settled reconcile planned from, and the first instant its plan could change by
    itself: the plan's next change point, or an agent's report going stale (which puts a node's
    allocatable GPUs back), whichever comes first. None when the read did not come from a cache."""
    if token is None:
        return None
    until = result.next_change.at if result.next_change is not None else datetime.max.replace(tzinfo=result.at.tzinfo)
    for node in snapshot.nodes:
        if node.telemetry_at is not None:
            expires = node.telemetry_at + stale_after
            if result.at < expires < until:
                until = expires
    return sha256, token, leader, until
