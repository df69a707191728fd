"""How the daemon's jobs wake reconciles (docs/daemon.md, the jobs): a burst of requests while a
reconcile runs is neither dropped nor piled up. Exactly one more reconcile follows, and APScheduler
never logs that it skipped a run."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

from scheduler.daemon.clock import Clock
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.reconciler import Outcome
from scheduler.daemon.service import Daemon


class BlockingReconciler:
    """Stands in for the Reconciler: each reconcile is counted and, until `release` is set, waits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.synced, self.last_read = True, None

    def reconcile(self) -> Outcome:
        with self.lock:
            self.calls += 1
            self.entered.set()
            assert self.release.wait(20), "the test never released the reconcile"
            return Outcome(plan=None)

    def is_leader(self) -> bool:
        return True


class StaticSource:
    """A policy source whose policy never changes (nothing to reload, nothing to report)."""

    policy = None
    valid = True
    error = None
    digest = "static"

    def reload(self) -> SimpleNamespace:
        return SimpleNamespace(error=None, changed=False)


def daemon_with(reconciler: BlockingReconciler, **kwargs) -> Daemon:
    return Daemon(reconciler, StaticSource(), Clock(), Metrics(), **kwargs)  # type: ignore[arg-type]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def skipped_runs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "maximum number of running instances" in r.getMessage()]


def test_requests_during_a_reconcile_add_up_to_exactly_one_more(caplog):
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    r = BlockingReconciler()
    daemon = daemon_with(r, reconcile_every=3600, debounce=0.01)
    daemon.start()  # the start reconcile begins, and blocks
    try:
        assert r.entered.wait(10)
        for _ in range(50):  # a burst of watch events, leadership changes and policy changes
            daemon.changed()
            daemon.soon("became leader")
            daemon.soon("policy changed")
            time.sleep(0.005)
        wait_until(lambda: daemon.scheduler.get_job("watch") is None)  # the debounced job has fired too
        time.sleep(0.5)  # and its request reached the daemon (the scheduler runs jobs on a pool thread)
        assert r.calls == 1
        r.release.set()
        wait_until(lambda: r.calls >= 2)
        time.sleep(0.3)  # nothing else is queued behind it
        assert r.calls == 2
        assert not daemon.busy()
        assert skipped_runs(caplog) == []
    finally:
        r.release.set()
        daemon.stop()


def test_a_reconcile_longer_than_the_period_skips_nothing_and_is_followed_by_one_more(caplog):
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    r = BlockingReconciler()
    daemon = daemon_with(r, reconcile_every=0.05)  # the periodic job fires ~10 times during the reconcile
    daemon.start()
    try:
        assert r.entered.wait(10)
        time.sleep(0.5)
        assert r.calls == 1
        assert skipped_runs(caplog) == []
        r.release.set()
        wait_until(lambda: r.calls >= 2)  # the periodic request made meanwhile was kept
        assert skipped_runs(caplog) == []
    finally:
        r.release.set()
        daemon.stop()


def test_stop_waits_for_the_reconcile_in_flight_and_starts_no_other():
    r = BlockingReconciler()
    daemon = daemon_with(r, reconcile_every=3600)
    daemon.start()
    assert r.entered.wait(10)
    daemon.soon("policy changed")  # asked for, not started yet
    stopper = threading.Thread(target=daemon.stop)
    stopper.start()
    time.sleep(0.1)
    assert stopper.is_alive()  # still waiting for the in-flight reconcile's writes
    r.release.set()
    stopper.join(10)
    assert not stopper.is_alive() and r.calls == 1
