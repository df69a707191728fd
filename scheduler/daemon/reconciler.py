"""One reconcile: read the cluster, plan for now, write the difference. Nothing else.

Pure parts (plan, desired_writes) are computed by the planner and the write builder; this is
the thin edge that reads, times and counts. Only the leader writes; a follower plans and stays
ready (its metrics stay warm) so a take-over costs one reconcile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.actuator.retry import classify, one_line
from scheduler.actuator.watch import ClusterReader
from scheduler.actuator.writer import Writer
from scheduler.actuator.writes import FOREIGN_GPU_POD, desired_writes, policy_invalid_event
from scheduler.cluster import Keys, Snapshot
from scheduler.cluster.decode import paused_gc
from scheduler.daemon.clock import Clock
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.policy_source import PolicySource
from scheduler.planner import Plan, plan
from scheduler.planner.model import DRAINING
from scheduler.planner.nodes import label_keys

log = logging.getLogger(__name__)


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
    writer: Writer
    is_leader: Callable[[], bool] = lambda: True
    last: Outcome | None = None
    synced: bool = False
    last_read: float | None = None  # monotonic time of the last successful cluster read
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: dict[str, str] | None = None  # allocation annotation last left on each namespace (drift detection)
    # when each draining node's drain started, as this replica planned it: the drain clock. The
    # annotation only reports it; an edited or deleted one is put back from here (docs/security.md)
    drain_clock: dict[str, datetime] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # ForeignGpuPod Events already written (one per pod and node)
    # after a reconcile that found nothing to write: what it planned from, and until when nothing
    # changes by itself (see _at_rest)
    rest: tuple[str, int, bool, datetime] | None = None

    @property
    def keys(self) -> Keys:
        return self.reader.keys

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

    def _remember(self, result: Plan) -> None:
        """After a reconcile that left every namespace as planned, what their records say."""
        key = self.keys.allocation
        self.written = {ns: ann[key] for ns, ann in result.namespace_annotations.items() if key in ann}

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

    def _at_rest(self, sha256: str, token: int | None, leader: bool, at: datetime) -> bool:
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
        token, leader, at = self.reader.token(), self.is_leader(), self.clock.now()
        if self._at_rest(policy.sha256, token, leader, at) and self.last is not None:
            self.last_read = time.monotonic()  # the watches are up and current: as good as a read
            return Outcome(self.last.plan, skipped="nothing changed")
        self.rest = None
        self.reader.read_labels(label_keys(policy))
        snapshot = self._keep_drain_clock(self.reader.read())
        self.synced = True
        self.last_read = time.monotonic()
        with paused_gc():  # a fifth to a third of plan() at 10,000-50,000 nodes is cycle collection
            result = plan(policy, snapshot, at, self.keys)
        self.metrics.observe_plan(result)
        self.drain_clock = {
            name: intent.drain_started
            for name, intent in result.node_intents.items()
            if intent.state == DRAINING and intent.drain_started is not None
        }
        if not leader:
            self.rest = _rest(policy.sha256, token, leader, result, snapshot, policy.program.spec.telemetry.staleAfter)
            return Outcome(result, skipped="not the leader")
        with paused_gc():
            writes = desired_writes(result, snapshot, policy, self.keys, self.written, self.reported)
        if not writes:
            self._remember(result)
            self.rest = _rest(policy.sha256, token, leader, result, snapshot, policy.program.spec.telemetry.staleAfter)
            return Outcome(result)
        self.reader.wrote()
        report = self.writer.apply(writes, still_allowed=self.is_leader)
        for (resource, verb), n in report.writes.items():
            self.metrics.api_writes_total.labels(resource, verb).inc(n)
        for (resource, verb), n in report.retries.items():
            self.metrics.api_write_retries_total.labels(resource, verb).inc(n)
        for w in report.done:
            if w.drift:
                self.metrics.drift_reverted_total.labels(w.drift).inc()
        log.info("reconciled at %s: %s", at.isoformat(), report.summary())
        self.reported |= {w.name for w in report.done if w.body.get("reason") == FOREIGN_GPU_POD}
        if report.failed or report.skipped or report.dry_run:
            self.written = None  # not sure what the namespaces carry now: trust the next plan's view
        else:
            self._remember(result)
        return Outcome(result, writes=len(report.done), failed=len(report.failed))


def _rest(
    sha256: str, token: int | None, leader: bool, result: Plan, snapshot: Snapshot, stale_after: timedelta
) -> tuple[str, int, bool, datetime] | None:
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
