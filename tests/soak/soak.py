"""The soak: the real programme played twice over HTTP, instant by instant, on two sandbox API
servers that start identical.

- the **reference** cluster is run by one daemon process that never fails, on a fault-free API;
- the **soak** cluster is run by daemon processes that are killed and restarted at seeded
  moments (between reconciles and part-way through a batch of writes), on an API server that
  answers a few percent of requests with 409, 410, 429, 500 or slowly, whose watches expire,
  while the policy on disk turns invalid now and then and comes back.

The programme clock steps through every change point of the reference's plans (stage starts,
eligibility, grace ends, each linear wind-down step, pool windows, every drain deadline), with
seeded extra instants in between. At each instant the same GPU jobs start and finish in both
clusters, each daemon reconciles until a reconcile has nothing left to write, the invariants are
checked after every reconcile of the soak cluster (and of the reference), and the two clusters
must then hold the same thing. The first broken invariant stops the soak with the seed, the
instant and what was seen.

Everything random derives from the seed, and only the test's own thread talks to the soak
cluster's main door (the Watcher has a side door onto the same store, with its own faults), so a
seed replays its reconciles request for request.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.keys import KEYS
from scheduler.actuator.retry import ApiFailure
from scheduler.daemon.reconciler import Outcome
from scheduler.planner import Plan
from scheduler.policy import load_policy
from tests.realpolicy import copy_one_cluster
from scheduler.sandbox import Faults, SandboxServer

from tests.soak import faults as soak_faults
from tests.soak.checks import DeadlineLedger, PodLedger, deletes, differences, end_state, ownership_problems, \
    plan_problems
from tests.soak.cluster import agent_pods, node_names, side_door, soak_cluster
from tests.soak.config import SoakConfig
from tests.soak.process import DaemonProcess, Killed, ProgrammeWall
from tests.soak.workload import Workload

REPO = Path(__file__).resolve().parents[2]
BEGIN = "2025-07-31T12:00:00+09:00"   # before the leased pools open and the first stage starts
END = "2027-01-02T00:00:00+09:00"     # the day after the last round (stage 4) is due
MAX_REFERENCE_RECONCILES = 8          # a fault-free daemon settles an instant in a few reconciles
MAX_SOAK_ATTEMPTS = 60                # reconciles (killed, failed or not) the soak may take for one instant

# Ways to break the policy on disk; each must be rejected while the last good one stays in force.
INVALID = (
    ("stages.yaml", "lg: {B200: 512, H100: 512}", "lg: {B200: -1}"),                  # a negative quota
    ("stages.yaml", "eligible: [lg, skt, upstage, naver, ncai]", "eligible: [lg, skt, nobody]"),  # unknown team
    ("program.yaml", "timezone: Asia/Seoul", "timezone: [Asia/Seoul"),               # not YAML any more
)


class SoakFailure(AssertionError):
    """An invariant broke: the message names the seed, the instant and what was seen."""


@dataclass
class Tally:
    instants: int = 0
    reference_reconciles: int = 0
    reconciles: int = 0               # soak reconciles that ran to the end (with or without failed writes)
    restarts: int = 0
    restarts_while_draining: int = 0
    kills: int = 0                    # reconciles killed part-way through their writes
    kills_while_draining: int = 0
    startup_crashes: int = 0          # a process whose Watcher could not make its first lists
    failed_reads: int = 0             # reconciles aborted because a list failed
    invalid_windows: int = 0
    reconciles_on_invalid_policy: int = 0   # reconciles while the files on disk were invalid
    skipped_without_policy: int = 0   # a process started while the files were invalid has no policy
    watch_expiries: int = 0           # watches ended by the sandbox's expire_watches()
    compactions: int = 0
    watch_wakeups: int = 0
    evictions_seen: int = 0
    jobs_started: int = 0
    jobs_finished: int = 0
    max_draining: int = 0


class Soak:
    def __init__(self, config: SoakConfig, tmp: Path) -> None:
        self.config = config
        self.rng = random.Random(f"{config.seed}/soak")
        self.tally = Tally()
        self.good_dir = tmp / "reference-policies"
        self.policy_dir = tmp / "policies"
        # the real programme as one cluster (tests/realpolicy.py): the soak drives one API server
        copy_one_cluster(self.good_dir)
        copy_one_cluster(self.policy_dir)
        self.policy = load_policy(self.good_dir)
        self.namespaces = sorted(ns for c in self.policy.consortia for ns in c.namespaces)
        cluster = soak_cluster(self.policy, config.scale)
        self.nodes = node_names(cluster)
        agents = {"apiVersion": "v1", "kind": "List", "items": agent_pods(self.nodes)}

        self.reference = SandboxServer(port=0, seed=config.seed).start()
        self.faults = Faults(seed=config.seed)
        self.server = SandboxServer(port=0, seed=config.seed, faults=self.faults).start()
        for server in (self.reference, self.server):
            server.load_list(cluster)
            server.load_list(agents)
        self.reference_kubeconfig = self.reference.write_kubeconfig(tmp / "reference.kubeconfig")
        self.kubeconfig = self.server.write_kubeconfig(tmp / "soak.kubeconfig")
        self.watch_faults = Faults(seed=config.seed)
        self.watch_server = side_door(self.server, self.watch_faults)
        self.watch_kubeconfig = self.watch_server.write_kubeconfig(tmp / "watch.kubeconfig")

        self.at = datetime.fromisoformat(BEGIN)
        self.end = datetime.fromisoformat(END)
        self.wall = ProgrammeWall(self.at.timestamp())
        self.writes: Counter[tuple[str, str]] = Counter()
        self.retries: Counter[tuple[str, str]] = Counter()
        self.ref = DaemonProcess(self.reference_kubeconfig, self.good_dir, self.wall, seed=config.seed,
                                 writes=Counter(), retries=Counter())
        self.proc: DaemonProcess | None = None
        self.stopping: list[threading.Thread] = []
        self.workload = Workload(config.seed, self.policy)
        self.deadlines = DeadlineLedger()
        self.reference_deadlines = DeadlineLedger()
        self.pods = PodLedger()
        self.reference_pods = PodLedger()
        self.where = "start"
        self.invalid_on_disk = False
        self.bad_policies: set[str] = set()  # distinct invalid contents put on disk
        self.draining = 0  # nodes with a drain deadline in the soak cluster, at the last look
        self.reference_plan: Plan | None = None  # the settled plan of the last instant: where to go next
        soak_faults.inject(self.faults, config.seed, config.fault_rate, config.slow_s)
        soak_faults.inject(self.watch_faults, f"{config.seed}/watcher", config.fault_rate, config.slow_s, verbs=("watch",))

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> None:
        index = 0
        while True:
            self.step(index)
            index += 1
            if self.config.steps and index >= self.config.steps:
                break
            nxt = self.next_instant()
            if nxt is None:
                break
            self.at = nxt

    def step(self, index: int) -> None:
        self.tally.instants += 1
        self.where = f"seed {self.config.seed}, instant #{index} {self.at.isoformat()}"
        self.wall.now = self.at.timestamp()
        for job in self.workload.step(index, self.reference, [self.reference, self.server]):
            self.pods.forget(*job)
            self.reference_pods.forget(*job)
        self.disturb_watches()
        first = self.settle_reference()
        self.settle_soak(first)
        diff = differences(end_state(self.reference, self.namespaces), end_state(self.server, self.namespaces))
        if diff:
            self.fail("the soak cluster differs from the fault-free one after this instant settled", diff)
        self.tally.max_draining = max(self.tally.max_draining, self.draining)

    def next_instant(self) -> datetime | None:
        """The reference plan's next change point (a drain deadline included), sometimes an
        instant before it; after the last one, the end of the programme."""
        plan = self.reference_plan
        nxt = plan.next_change.at if plan is not None and plan.next_change is not None else None
        if nxt is None or nxt > self.end:
            return self.end if self.at < self.end else None
        gap = (nxt - self.at).total_seconds()
        if gap > 2 and self.rng.random() < self.config.midpoint_rate:
            return self.at + timedelta(seconds=self.rng.randint(1, int(gap) - 1))
        return nxt

    # -- the fault-free daemon -------------------------------------------------------------------
    def settle_reference(self) -> int:
        """Reconcile the reference until nothing is left to write; the first reconcile's writes."""
        first = None
        for _ in range(MAX_REFERENCE_RECONCILES):
            outcome = self.ref.reconcile()
            self.tally.reference_reconciles += 1
            self.check(self.reference, self.ref, self.reference_deadlines, self.reference_pods, "reference")
            if outcome.failed:
                self.fail("the fault-free daemon failed writes", [repr(outcome)])
            first = outcome.writes if first is None else first
            if outcome.writes == 0:
                self.reference_plan = outcome.plan
                return first
        self.fail(f"the fault-free daemon still writes after {MAX_REFERENCE_RECONCILES} reconciles at one instant", [])
        raise AssertionError  # unreachable

    # -- the daemon that keeps dying -------------------------------------------------------------
    def settle_soak(self, expected_writes: int) -> None:
        invalid_left = 0
        if self.rng.random() < self.config.invalid_rate:
            self.break_policy()
            invalid_left = self.rng.randint(1, 3)
        hint = expected_writes
        for _ in range(MAX_SOAK_ATTEMPTS):
            if self.invalid_on_disk and invalid_left <= 0:
                self.restore_policy()
            # restarts come more often while nodes drain: that is when a lost drain clock would hurt
            if self.proc is None or self.rng.random() < self.config.restart_rate * (4 if self.draining else 1):
                if not self.restart():
                    continue
            assert self.proc is not None
            self.proc.check_policy()
            kill_after = None
            if hint > 0 and self.rng.random() < self.config.kill_rate * (2 if self.draining else 1):
                kill_after = self.rng.randrange(hint)
            invalid_left -= 1
            try:
                outcome = self.proc.reconcile(kill_after)
            except Killed:
                self.tally.kills += 1
                self.tally.kills_while_draining += self.draining > 0
                self.observe(f"killed after {kill_after} writes")
                self.kill()
                continue
            except ApiFailure as failure:
                self.tally.failed_reads += 1
                self.observe(f"read failed ({failure.status})")
                continue
            self.tally.reconciles += 1
            self.observe("reconciled")
            self.check_policy_in_force(outcome)
            hint = outcome.writes + outcome.failed
            if self.settled(outcome):
                return
        self.fail(f"the soak daemon did not settle in {MAX_SOAK_ATTEMPTS} attempts", [])

    def settled(self, outcome: Outcome) -> bool:
        return (not self.invalid_on_disk and outcome.plan is not None and not outcome.skipped
                and outcome.writes == 0 and outcome.failed == 0)

    def restart(self) -> bool:
        """A new process; False when it died starting (its Watcher's first lists failed)."""
        if self.proc is not None:
            self.kill()
        self.tally.restarts += 1
        self.tally.restarts_while_draining += self.draining > 0
        proc = DaemonProcess(self.kubeconfig, self.policy_dir, self.wall, seed=self.rng.randrange(2**32),
                             writes=self.writes, retries=self.retries)
        self.proc = proc
        if proc.source.policy is None:
            self.tally.skipped_without_policy += 1
        if self.config.watch:
            # the Watcher's first lists fail as often as a reconcile's reads; decided here rather
            # than by a list rule its relists (on their own threads) would share
            if self.rng.random() < min(1.0, 2 * self.config.fault_rate):
                self.watch_faults.add(verb="list", sequence=[self.rng.choice((410, 500))])
            try:
                proc.watch(self.watch_kubeconfig, self.woken)
            except (ApiException, ApiFailure):
                self.tally.startup_crashes += 1
                self.kill()
                return False
        return True

    def kill(self) -> None:
        if self.proc is None:
            return
        stopping = self.proc.die()
        if stopping is not None:
            self.stopping.append(stopping)
        self.proc = None

    def woken(self) -> None:
        self.tally.watch_wakeups += 1

    def disturb_watches(self) -> None:
        """Now and then end every open watch (410 Expired), or forget the history (compaction)."""
        if not self.config.watch:
            return
        draw = self.rng.random()
        if draw < 0.1:
            self.tally.watch_expiries += self.server.expire_watches()
        elif draw < 0.13:
            self.server.compact()
            self.tally.compactions += 1

    # -- the policy on disk ----------------------------------------------------------------------
    def break_policy(self) -> None:
        name, good, bad = self.rng.choice(INVALID)
        path = self.policy_dir / name
        text = path.read_text()
        assert good in text, f"{name} no longer contains {good!r}: update INVALID"
        path.write_text(text.replace(good, bad))
        self.bad_policies.add(name + bad)
        self.invalid_on_disk = True
        self.tally.invalid_windows += 1
        if self.proc is not None:
            self.proc.check_policy()
            if self.proc.source.error is None:
                self.fail(f"an invalid {name} was accepted", [bad])

    def restore_policy(self) -> None:
        for f in self.good_dir.iterdir():
            shutil.copyfile(f, self.policy_dir / f.name)
        self.invalid_on_disk = False

    def check_policy_in_force(self, outcome: Outcome) -> None:
        if not self.invalid_on_disk:
            return
        self.tally.reconciles_on_invalid_policy += 1
        if outcome.plan is not None and outcome.plan.policy_sha256 != self.policy.sha256:
            self.fail("a reconcile planned with another policy than the last good one while the files were invalid",
                      [outcome.plan.policy_sha256])

    # -- checks --------------------------------------------------------------------------------
    def observe(self, what: str) -> None:
        proc = self.proc
        assert proc is not None
        self.check(self.server, proc, self.deadlines, self.pods, what)

    def check(self, server: SandboxServer, proc: DaemonProcess, deadlines: DeadlineLedger, pods: PodLedger,
              what: str) -> None:
        nodes = server.list("nodes")
        problems = ownership_problems(nodes)
        problems += deadlines.observe(nodes, what)
        problems += pods.observe(nodes, server.list("pods"), self.at, what)
        if server is self.server:
            self.draining = sum(1 for n in nodes if n["metadata"].get("annotations", {}).get(KEYS.drain_deadline))
        for plan in proc.metrics.plans:
            problems += plan_problems(plan)
        proc.metrics.plans.clear()
        for door in (server, self.watch_server) if server is self.server else (server,):
            if deletes(door):
                problems.append(f"{what}: the API was asked to delete: {deletes(door)}")
        if problems:
            self.fail(f"an invariant broke in the {'reference' if server is self.reference else 'soak'} cluster",
                      problems)

    def fail(self, what: str, details: list[str]) -> None:
        lines = [f"{self.where}: {what}"] + [f"  {d}" for d in details[:20]]
        raise SoakFailure("\n".join(lines))

    # -- the end ---------------------------------------------------------------------------------
    def watcher_consistent(self, timeout: float = 20.0) -> tuple[bool, str]:
        """The live process's Watcher, after all the expiries, sees what a fresh read sees."""
        if self.proc is None or self.proc.watcher is None:
            return True, "no watcher"
        from scheduler.actuator.reads import read_snapshot

        self.faults.clear()
        self.watch_faults.clear()
        fresh, _ = read_snapshot(self.proc.api, KEYS)
        ok = self.proc.watcher.wait_for(lambda s: s == fresh, timeout)
        return ok, f"relists {dict(self.proc.watcher.relists)}, errors {dict(self.proc.watcher.errors)}"

    def close(self) -> None:
        self.faults.clear()
        self.watch_faults.clear()
        self.kill()
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in self.stopping) and time.monotonic() < deadline:
            self.server.expire_watches()  # wake watches idle on a quiet resource so they see the stop
            for t in self.stopping:
                t.join(0.05)
        self.ref.api.close()
        self.watch_server.stop()
        self.server.stop()
        self.reference.stop()

    def report(self) -> dict[str, Any]:
        self.tally.jobs_started, self.tally.jobs_finished = self.workload.started, self.workload.finished
        self.tally.evictions_seen = self.pods.evicted
        return {
            "config": self.config.describe(),
            "cluster": f"{len(self.nodes)} nodes",
            "programme": f"{BEGIN} .. {self.at.isoformat()}",
            "faults injected": soak_faults.by_kind(self.faults, self.watch_faults),
            "faults by verb": soak_faults.by_verb(self.faults, self.watch_faults),
            "faults met by the Watcher": soak_faults.by_kind(self.watch_faults),
            "writes": dict(sorted((f"{v} {r}", n) for (r, v), n in self.writes.items())),
            "writes retried": dict(sorted((f"{v} {r}", n) for (r, v), n in self.retries.items())),
            "tally": self.tally.__dict__,
        }

