"""One run of the daemon, as `gpu-scheduler run` builds it, that the soak can kill.

A `DaemonProcess` owns its API client, Writer, policy source, Clock, Reconciler, Daemon (for the
policy reload check) and Watcher (with a client of its own, to the soak's side door on the same
store). A restart throws all of it away and builds a new one: what the new process knows about
the programme comes only from the cluster and the policy files.

Killing mid-write uses the Reconciler's own seam: `is_leader` is asked once after planning and
then by `Writer.apply` before every write of the batch (`still_allowed`), so a `KillSwitch`
armed with k raises `Killed` after k writes, exactly where a leader losing its Lease would stop.
`Killed` is a BaseException, like SystemExit: nothing in the daemon catches it, as nothing runs
after a SIGKILL.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kubernetes.client import ApiClient

from scheduler.actuator.watch import Watcher
from scheduler.actuator.writer import Writer
from scheduler.actuator.connect import connect
from scheduler.actuator.retry import Backoff
from scheduler.daemon.clock import Clock
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Outcome, Reconciler
from scheduler.daemon.service import Daemon
from scheduler.daemon.metrics import Metrics
from scheduler.planner import Plan

from tests.soak.cluster import LEASE_NAMESPACE
from tests.keys import KEYS
from scheduler.actuator.watch import ClusterReader


class Killed(BaseException):
    """The daemon process died here."""


class KillSwitch:
    """The Reconciler's `is_leader`: always True, until an armed count of writes has been made;
    then it raises `Killed` at every call until disarmed (a dead process starts no more writes,
    whichever of the writer's threads asks). Writes already on the wire still land, as they
    would when a real process dies."""

    def __init__(self) -> None:
        self._left: int | None = None
        self._tripped = False
        self._lock = threading.Lock()

    def arm(self, writes: int) -> None:
        with self._lock:
            self._left = writes + 1  # the Reconciler asks once after planning, before the first write
            self._tripped = False

    def disarm(self) -> None:
        with self._lock:
            self._left = None
            self._tripped = False

    def __call__(self) -> bool:
        with self._lock:
            if self._tripped:
                raise Killed
            if self._left is not None:
                if self._left == 0:
                    self._tripped = True
                    raise Killed
                self._left -= 1
        return True


class PlanLog(Metrics):
    """Metrics that also keep every plan the Reconciler made, for the soak's checks."""

    def __init__(self) -> None:
        super().__init__()
        self.plans: list[Plan] = []

    def observe_plan(self, plan: Plan) -> None:
        super().observe_plan(plan)
        self.plans.append(plan)


class ProgrammeWall:
    """The wall clock the daemon's Clock reads: programme time in POSIX seconds, set by the soak.
    Each process builds its own `Clock(wall=...)` (no --start, no scale), as production does."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DaemonProcess:
    def __init__(self, kubeconfig: Path, policy_dir: Path, wall: ProgrammeWall, *, seed: int,
                 writes: Counter[tuple[str, str]], retries: Counter[tuple[str, str]],
                 concurrency: int = 8) -> None:
        self.api = connect(str(kubeconfig))
        self.kill = KillSwitch()
        self.metrics = PlanLog()
        self.clock = Clock(wall=wall)
        self.source = PolicySource(policy_dir)
        self.writer = Writer(self.api, counters=writes, retries=retries, sleep=lambda s: None,
                             backoff=Backoff(rng=random.Random(seed)), concurrency=concurrency)
        self.reconciler = Reconciler(self.source, ClusterReader(self.api, KEYS), self.clock, self.metrics, self.writer,
                                     is_leader=self.kill)
        self.daemon = Daemon(self.reconciler, self.source, self.clock, self.metrics, namespace=LEASE_NAMESPACE)
        self.daemon.check_policy()  # what Daemon.start() does first
        self.watcher: Watcher | None = None
        self.watch_api: ApiClient | None = None

    def watch(self, kubeconfig: Path, on_change: Callable[[], None]) -> None:
        """Start the Watcher, as `run` does after the first reconcile is scheduled, with its own
        client (to the soak's side door). A failed first list raises out of `Watcher.start()`,
        and `run` dies with it."""
        self.watch_api = connect(str(kubeconfig))
        watcher = Watcher(self.watch_api, KEYS, on_change=on_change, backoff=Backoff(base=0.01, cap=0.1))
        self.watcher = watcher
        watcher.start()

    def reconcile(self, kill_after: int | None = None) -> Outcome:
        if kill_after is not None:
            self.kill.arm(kill_after)
        try:
            return self.reconciler.reconcile()
        finally:
            self.kill.disarm()

    def check_policy(self) -> None:
        """The reload check the daemon runs every 2 s."""
        self.daemon.check_policy()

    def die(self) -> threading.Thread | None:
        """Gone at once: its idle connections close, its watches end in the background (the
        returned thread, if it had any)."""
        stopping = None
        if self.watcher is not None:
            stopping = threading.Thread(target=self._stop_watching, name="soak-stop-watcher", daemon=True)
            stopping.start()
        self.api.close()
        return stopping

    def _stop_watching(self) -> None:
        assert self.watcher is not None and self.watch_api is not None
        self.watcher.stop()
        self.watch_api.close()
