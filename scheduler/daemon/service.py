"""The daemon's jobs, on APScheduler 3.x: a periodic reconcile, a one-shot reconcile at the next
change point (re-armed after every reconcile and whenever the policy changes), and a policy
reload check every few seconds. With a scaled clock, the change-point job is armed at the real
instant the programme's clock reaches the change point.

The jobs only *ask* for a reconcile; one reconcile thread runs them, one at a time. Asking while
a reconcile runs is remembered, and however many times it was asked, exactly one more reconcile
runs after the current one. So no job ever waits on another (APScheduler never skips a run for
"maximum number of running instances reached") and no request is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.actuator.retry import one_line
from scheduler.daemon.clock import Clock
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Reconciler
from scheduler.planner.model import Plan

log = logging.getLogger(__name__)


class Daemon:
    def __init__(
        self,
        reconciler: Reconciler,
        source: PolicySource,
        clock: Clock,
        metrics: Metrics,
        *,
        reconcile_every: float = 30.0,
        reload_every: float = 2.0,
        namespace: str = "gpu-scheduler",
        debounce: float = 2.0,
        somebody_leads: Callable[[], bool] = lambda: True,
    ):
        self.somebody_leads = somebody_leads  # the leader election's view (always true without one)
        self.debounce = debounce
        self.namespace = namespace  # where the daemon runs: its Lease and its own Events live here
        self.reconciler = reconciler
        self.source = source
        self.clock = clock
        self.metrics = metrics
        self.reconcile_every = reconcile_every
        self.reload_every = reload_every
        self._stopping = False
        self._wake = threading.Condition()
        self._wanted: str | None = None  # why the next reconcile was asked for (None: not asked)
        self._busy = False  # a reconcile is running on the reconcile thread
        self._worker: threading.Thread | None = None
        self._reported: str | None = None  # digest of the invalid policy last reported in an Event
        self._counted: str | None = None  # digest of the invalid policy last counted
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,  # after a pause, one reconcile, not a burst
                "max_instances": 1,  # a job only asks for a reconcile (request): it never runs long
                "misfire_grace_time": 3600,  # a change point missed while paused still runs
            },
        )

    def ready(self) -> tuple[bool, str]:
        if not self.source.valid and self.source.policy is None:
            return False, "no valid policy loaded"
        if not self.reconciler.synced:
            return False, "cluster not read yet"
        last = self.reconciler.last_read
        if last is not None and time.monotonic() - last > 3 * self.reconcile_every + 30:
            return False, f"cluster not read for {time.monotonic() - last:.0f}s (API unreachable?)"
        if not self.somebody_leads():
            return False, "no replica leads (the Lease is free, expired, or held by something else)"
        return True, ""

    def start(self) -> None:
        self.check_policy()
        self._worker = threading.Thread(target=self._reconcile_loop, name="reconcile", daemon=True)
        self._worker.start()
        self.scheduler.add_job(
            self.request,
            IntervalTrigger(seconds=self.reconcile_every),
            args=["periodic"],
            id="reconcile",
            name="periodic reconcile",
        )
        self.scheduler.add_job(
            self.check_policy, IntervalTrigger(seconds=self.reload_every), id="policy", name="policy reload check"
        )
        self.scheduler.start()
        self.soon("start")

    def stop(self) -> None:
        """Stop scheduling; let an in-flight reconcile finish its writes (never cut one in half).
        A reconcile asked for but not started yet is not started.

        Not shutdown(wait=True): a job re-arming the change point would wait on the scheduler's
        lock while shutdown waits on the job."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self.scheduler.shutdown(wait=False)
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        with self.reconciler.lock:
            pass

    def request(self, why: str) -> None:
        """Ask for a reconcile, from any thread; returns at once. While one runs, every request
        made meanwhile adds up to exactly one more reconcile after it."""
        with self._wake:
            if self._stopping:
                return
            if self._wanted is None:
                self._wanted = why
            self._wake.notify_all()

    def busy(self) -> bool:
        """Whether a reconcile is running or asked for and not started yet."""
        with self._wake:
            return self._busy or self._wanted is not None

    def _reconcile_loop(self) -> None:
        while True:
            with self._wake:
                while self._wanted is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                why, self._wanted, self._busy = self._wanted or "", None, True
            try:
                self.tick(why)
            except Exception:  # a bug in arming or reporting must not end the reconcile thread
                log.exception("reconcile (%s) failed", why)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def soon(self, why: str) -> None:
        """A reconcile as soon as possible (coalesced with one already asked for)."""
        self.request(why)

    def changed(self) -> None:
        """Something the planner reads changed in the cluster (a watch event): reconcile shortly.
        Debounced on the leading edge: the first change arms one reconcile `debounce` seconds
        later and later changes ride along, so a burst costs one reconcile, never an endless delay."""
        if self._stopping or not self.scheduler.running or self.scheduler.get_job("watch"):
            return
        run_at = datetime.now(UTC) + timedelta(seconds=self.debounce)
        self.scheduler.add_job(
            self.request,
            DateTrigger(run_date=run_at),
            args=["cluster changed"],
            id="watch",
            name="reconcile after a watched change",
            replace_existing=True,
        )

    def tick(self, why: str) -> None:
        """One reconcile, then re-arm the change point: what the reconcile thread runs for each
        request (and what a caller that wants one now, on its own thread, can call)."""
        if self._stopping:
            return
        log.debug("reconcile (%s)", why)
        try:
            outcome = self.reconciler.reconcile()
        except Exception:  # noqa: BLE001 - logged and counted by the reconciler
            return  # logged and counted by the reconciler; the periodic job retries
        self.arm_change_point(outcome.plan)
        self.report_policy_problems()

    def arm_change_point(self, plan: Plan | None) -> None:
        if self._stopping:
            return
        nxt = plan.next_change if plan is not None else None
        if nxt is None:
            if self.scheduler.get_job("change-point"):
                self.scheduler.remove_job("change-point")
            return
        # one second past the change point: plans at a boundary are exact, so be after it
        run_at = self.clock.wall_time_of(nxt.at + timedelta(seconds=1))
        self.scheduler.add_job(
            self.request,
            DateTrigger(run_date=run_at),
            args=[f"change point: {nxt.what}"],
            id="change-point",
            name=f"change point: {nxt.what} at {nxt.at.isoformat()}",
            replace_existing=True,
        )

    def report_policy_problems(self) -> None:
        """The leader tells operators, once per bad policy, why it was not applied. Checked at every
        reconcile too, so a replica that takes over reports a bad policy its predecessor saw first
        (the Event's name comes from the policy's digest: the same bad policy is one Event)."""
        digest = self.source.digest
        if self.source.error is None or digest == self._reported or not self.reconciler.is_leader():
            return
        try:
            self.reconciler.report_invalid_policy(self.namespace)
            self._reported = digest
        except Exception as err:  # noqa: BLE001 - reported, and tried again at the next check
            log.warning("could not write the PolicyInvalid Event: %s", one_line(err))

    def check_policy(self) -> None:
        result = self.source.reload()
        self.metrics.set_policy(self.source.policy.sha256 if self.source.policy else None, self.source.valid)
        if result.error is not None and self.source.digest != self._counted:
            self._counted = self.source.digest
            self.metrics.policy_reload_errors_total.inc()
        self.report_policy_problems()
        if result.changed:
            log.info("policy changed: re-planning now and re-arming change points")
            if self.scheduler.running:
                self.soon("policy changed")
