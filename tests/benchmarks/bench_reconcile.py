"""Benchmark: the daemon (`Reconciler` + `Writer`, over HTTP) against the sandbox API server with
a large synthetic cluster: the cold start, the steady state, and the real programme's round 1.

    .venv/bin/python tests/benchmarks/bench_reconcile.py [--nodes 1000,10000] [--runs 3]
                                                         [--nodes-profile typical|large] [--profile]

The sandbox API server runs in a process of its own (as an API server would: it shares no GIL,
heap or garbage collector with the daemon). The daemon's policy is the real programme as one
cluster (tests/realpolicy.py: `policies/` without its `clusters:` list and its pools' `cluster:`,
written into this run's temporary folder): the real programme spans several clusters, and here one
daemon drives one API. Per size and run:

1. **Sandbox load.** `SandboxServer.load_list` of the cluster (unowned synthetic GPU nodes as
   `bench_plan.py` makes them, of the `--nodes-profile` size, the consortia's namespaces and
   `gpu-scheduler`), timed on its own.
2. **Cold start**: from `connect()` to the end of the first reconcile at 2026-01-15 17:50 KST
   (stage 1 in force) on that unlabelled cluster: read (4 lists) + plan + diff + writes. Every node
   a pool covers gets its `node-state` label, so this is the largest batch the daemon ever sends.
3. **Steady state**: reconciles at the same instant; the API writes must be 0.
4. **Round 1** (stage-2 start, 2026-01-15T18:00:00+09:00: Naver and NC AI wind down, LG and
   Upstage trade half their H100 for B200): a `Daemon` with the `Watcher` that `gpu-scheduler run` starts
   (periodic reconcile every hour, so only the change-point job and the watch can act), on a
   real-time clock that reaches the stage start a few seconds after it starts. Measured: from the
   instant the programme clock reaches the stage start to the change-point reconcile starting, to
   the first and to the last write landing in the sandbox, until a reconcile writes nothing (a
   drained node without GPU pods is released by the reconcile after the one that drained it).
   Each reconcile's writes are compared with a minimum computed here from the snapshot it read
   and its plan, independently of `desired_writes`: nodes whose owner or state changes +
   namespaces whose labels or annotation change + ResourceQuotas that change + the Events
   docs/daemon.md requires (one per node assigned/drained/released per namespace of its team,
   one status/stage Event and one QuotaChanged per namespace whose status/stage or quota changes).
   A diff of the sandbox's objects before/after gives the net change.
5. **Steady state after the round** (5 minutes later): writes must be 0 again.

Times are wall clock; CPU is the daemon's thread (time.thread_time), the daemon's process, and
the sandbox's process. Medians over --runs runs.

`--profile` adds one profiled pass per size: cProfile of the daemon's reconciles (wall clock, so
waiting for the API server shows up as socket reads) and of the sandbox's request handling (in its
process), each printed as its top entries by cumulative and by own time.
Nothing here is a pass/fail test: it prints figures.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import ROOT, SandboxProcess, exponent, fmt_exp, median, verdict  # noqa: E402

import scheduler.daemon.reconciler as reconciler_module  # noqa: E402
from tests.keys import KEYS  # noqa: E402
from tests.realpolicy import copy_one_cluster  # noqa: E402  (the real programme as one cluster)
from scheduler.actuator.watch import Watcher  # noqa: E402
from scheduler.actuator.writer import Writer  # noqa: E402
from scheduler.actuator.connect import connect  # noqa: E402
from scheduler.daemon.clock import Clock  # noqa: E402
from scheduler.daemon.policy_source import PolicySource  # noqa: E402
from scheduler.daemon.reconciler import Reconciler  # noqa: E402
from scheduler.daemon.service import Daemon  # noqa: E402
from scheduler.daemon.metrics import Metrics  # noqa: E402
from scheduler.actuator.watch import ClusterReader

STAGE2 = datetime.fromisoformat("2026-01-15T18:00:00+09:00")  # round 1 (policies/stages.yaml)
BEFORE = STAGE2 - timedelta(minutes=10)   # stage 1 in force: the cold start and the steady state
AFTER = STAGE2 + timedelta(minutes=5)
LEASE_NS = "gpu-scheduler"
PREFIX = KEYS.prefix + "/"
# The daemon's policy folder: the real programme as one cluster (tests/realpolicy.py), written into
# this run's temporary folder by main().
POLICY_DIR: Path | None = None


# --------------------------------------------------------------------------- instruments

@dataclass
class Call:
    name: str
    t0: float           # time.monotonic(): comparable with the sandbox process's stamps
    t1: float
    cpu: float          # CPU of the calling thread (the daemon's)
    process_cpu: float  # CPU of the daemon's whole process meanwhile (watch threads included)
    result: Any = None

    @property
    def wall(self) -> float:
        return self.t1 - self.t0


class Recorder:
    """Timing wrappers around the reconciler's steps, installed on the module names and classes
    the daemon calls through. `keep` also keeps what read/plan/reconcile returned."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.keep = False
        self.lock = threading.Lock()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0, c0, p0 = time.monotonic(), time.thread_time(), time.process_time()
            result = None
            try:
                result = fn(*args, **kwargs)
                return result
            finally:
                call = Call(name, t0, time.monotonic(), time.thread_time() - c0, time.process_time() - p0,
                            result if self.keep else None)
                with self.lock:
                    self.calls.append(call)
        return timed

    def install(self) -> None:
        ClusterReader.read = self.wrap("read", ClusterReader.read)  # type: ignore[method-assign]
        reconciler_module.plan = self.wrap("plan", reconciler_module.plan)
        reconciler_module.desired_writes = self.wrap("diff", reconciler_module.desired_writes)
        Writer.apply = self.wrap("write", Writer.apply)  # type: ignore[method-assign]
        Reconciler.reconcile = self.wrap("reconcile", Reconciler.reconcile)  # type: ignore[method-assign]

    def since(self, t: float) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.t0 >= t]


REC = Recorder()


def kinds(c: Counter) -> str:
    return ", ".join(f"{verb} {res} {n}" for (verb, res), n in sorted(c.items())) or "none"


def phase_split(calls: list[Call]) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in calls:
        out[c.name] = out.get(c.name, 0.0) + c.wall
        out[c.name + " cpu"] = out.get(c.name + " cpu", 0.0) + c.cpu
    return out


# --------------------------------------------------------------------------- the minimum

def minimum_writes(snapshot, p, policy) -> Counter:
    """The fewest writes that take the cluster as `snapshot` saw it to plan `p`, counted from the
    plan's node intents, namespace labels/annotation and quotas against the objects' current
    values and from the Events docs/daemon.md requires; not from desired_writes()."""
    existing = snapshot.namespaces

    def team_namespaces(team):
        c = policy.consortium(team) if team else None
        return [ns for ns in (c.namespaces if c else []) if ns in existing]

    need: Counter = Counter()
    for node in snapshot.nodes:
        intent = p.node_intents.get(node.name)
        if intent is None:
            continue
        owner, state = node.labels.get(KEYS.consortium), node.labels.get(KEYS.node_state)
        if (owner, state) == (intent.owner, intent.state):
            continue
        need["nodes"] += 1
        if intent.state == "assigned":
            need["events"] += len(team_namespaces(intent.owner))          # NodeAssigned
        elif intent.state == "draining" and state != "draining":
            need["events"] += len(team_namespaces(intent.owner or owner))  # NodeDraining
        elif owner and not intent.owner:
            need["events"] += len(team_namespaces(owner))                  # NodeReleased
    for c in p.consortia:
        for ns in team_namespaces(c.name):
            labels, annotations = existing[ns].labels, existing[ns].annotations
            want = p.namespace_labels.get(ns, {})
            want_ann = p.namespace_annotations.get(ns, {})
            stale = [k for k in labels if k.startswith(PREFIX + "quota-") and k not in want]
            labels_change = bool(stale) or any(labels.get(k) != v for k, v in want.items())
            ann_change = any(annotations.get(k) != v for k, v in want_ann.items())
            if labels_change or ann_change:
                need["namespaces"] += 1
            if labels.get(KEYS.status) != c.status or labels.get(KEYS.stage) != want.get(KEYS.stage):
                need["events"] += 1                                        # StageEntered / WindDownStarted / Eliminated
            quota_labels = [k for k in want if k == KEYS.quota_gpus or k.startswith(PREFIX + "quota-")]
            quota_change = str(p.namespace_quotas.get(ns)) != str(snapshot.quotas.get(ns))
            if quota_change:
                need["resourcequotas"] += 1
            if quota_change or any(labels.get(k) != want[k] for k in quota_labels):
                need["events"] += 1                                        # QuotaChanged
            if p.decision_pending and (labels_change or ann_change):
                need["events"] += 1                                        # DecisionPending
    return need


def round_reconciles(calls: list[Call], policy) -> list[tuple[Call, Counter]]:
    """Every reconcile that planned at or after the stage start, with its own minimum (from the
    snapshot it read and the plan it made)."""
    out = []
    for rc in calls:
        if rc.name != "reconcile" or rc.result is None or rc.result.plan is None or rc.result.plan.at < STAGE2:
            continue
        inside = [c for c in calls if rc.t0 <= c.t0 <= rc.t1]
        rd = next((c for c in inside if c.name == "read" and c.result is not None), None)
        if rd is None:
            continue
        out.append((rc, minimum_writes(rd.result, rc.result.plan, policy)))
    return out


def changed_objects(before, after) -> Counter:
    c: Counter = Counter()
    for kind in ("nodes", "namespaces", "resourcequotas"):
        for key, value in after[kind].items():
            if before[kind].get(key) != value:
                c[kind] += 1
    c["events"] = len(set(after["events"]) - set(before["events"]))
    return +c


# --------------------------------------------------------------------------- one run

class Wall:
    """A wall clock the benchmark moves by hand (as tests/daemon/test_daemon.py does)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def at(self, instant: datetime) -> None:
        self.now = 1_000_000.0 + (instant - BEFORE).total_seconds()


@dataclass
class Run:
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def reconcile_timed(r: Reconciler, sandbox: SandboxProcess, profile: cProfile.Profile | None = None):
    """One reconcile on this thread: its outcome, its phases and CPU, the writes it made."""
    w0, s0 = sandbox.writes(), sandbox.call("cpu")
    t0 = time.monotonic()
    if profile is not None:
        profile.enable()
    outcome = r.reconcile()
    if profile is not None:
        profile.disable()
    calls = REC.since(t0)
    total = next(c for c in calls if c.name == "reconcile")
    split = phase_split([c for c in calls if c.name != "reconcile"])
    split.update(total=total.wall, cpu=total.cpu, proc_cpu=total.process_cpu,
                 sandbox_cpu=sandbox.call("cpu") - s0)
    return outcome, split, sandbox.writes() - w0


def one_run(n: int, data_path: Path, args, profiling: bool = False) -> Run:
    run = Run()
    f = run.figures
    profiles: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-reconcile-"))
    sandbox = SandboxProcess(seed=1)
    try:
        # 1. load
        loaded, f["load"], f["load cpu"] = sandbox.call("load", str(data_path), not args.no_gc_freeze)
        run.notes.append(f"sandbox loaded {loaded} objects")

        # 2. cold start
        sandbox.call("profile", profiling)
        wall = Wall()
        t_start = time.monotonic()
        api = connect(sandbox.call("kubeconfig", str(tmp / "kubeconfig")))
        assert POLICY_DIR is not None, "main() writes the one-cluster policy first"
        source = PolicySource(POLICY_DIR)
        source.reload()
        policy = source.policy
        r = Reconciler(source, ClusterReader(api, KEYS), Clock(start=BEFORE, wall=wall), Metrics(), Writer(api))
        prof = cProfile.Profile() if profiling else None
        outcome, split, w = reconcile_timed(r, sandbox, prof)
        f["cold start"] = time.monotonic() - t_start
        f.update({f"first {k}": v for k, v in split.items()})
        f["first writes"] = sum(w.values())
        f["first failed"] = outcome.failed
        run.notes.append(f"first reconcile writes: {kinds(w)}")
        if profiling:
            profiles["first reconcile: daemon"] = prof
            profiles["first reconcile: sandbox request handling"] = sandbox.call("profile_dump", str(tmp / "s1.prof"))

        # 3. steady state
        steady = []
        for i in range(args.steady_runs):
            prof = cProfile.Profile() if profiling and i == 0 else None
            _, split, w = reconcile_timed(r, sandbox, prof)
            steady.append((split, sum(w.values())))
            if prof:
                profiles["steady-state reconcile: daemon"] = prof
                profiles["steady-state reconcile: sandbox request handling"] = \
                    sandbox.call("profile_dump", str(tmp / "s2.prof"))
        f["steady"] = median(s["total"] for s, _ in steady)
        for k in ("read", "plan", "diff", "cpu", "proc_cpu", "sandbox_cpu"):
            f[f"steady {k}"] = median(s.get(k, 0.0) for s, _ in steady)
        f["steady writes"] = max(wc for _, wc in steady)

        # 4. round 1
        before = sandbox.managed(PREFIX, (KEYS.telemetry,))
        w0, q0 = sandbox.writes(), sandbox.requests()
        t_round = time.monotonic()
        REC.keep = True
        if profiling:
            # a profile needs the reconciles on this thread: the change point at the stage start + 1 s,
            # then follow-ups 2 s apart (as the watch would wake them) until one writes nothing
            wall.at(STAGE2 + timedelta(seconds=1))
            t_stage = time.monotonic() - 1
            prof = cProfile.Profile()
            outcome, split, _ = reconcile_timed(r, sandbox, prof)
            profiles["round 1 change-point reconcile: daemon"] = prof
            profiles["round 1 change-point reconcile: sandbox request handling"] = \
                sandbox.call("profile_dump", str(tmp / "s3.prof"))
            f.update({f"round {k}": v for k, v in split.items()})
            for _ in range(5):
                if not outcome.writes:
                    break
                wall.now += 2
                outcome, _, _ = reconcile_timed(r, sandbox)
        else:
            t_stage = round_by_daemon(f, run, api, source, sandbox, args, lead=max(args.lead, 4 * f["steady"] + 8))
        REC.keep = False
        calls = REC.since(t_round)
        found = round_reconciles(calls, policy)
        rounds = [(c.t0, c.wall, c.result.writes, m) for c, m in found]
        for i, (c, _) in enumerate(found[:2]):
            p = c.result.plan
            acts = Counter(a.action for a in p.actions)
            run.notes.append(f"plan of round reconcile #{i + 1}: " + ", ".join(f"{k} {v}" for k, v in sorted(acts.items()))
                             + "; " + "; ".join(f"{x.name} {x.status} {x.allocated_gpus}/{x.quota_gpus} GPUs on "
                                                f"{len(x.nodes)} nodes, {len(x.draining_nodes)} draining"
                                                for x in p.consortia))
        for c in calls:
            c.result = None  # the snapshots are big; what was needed is taken
        w = sandbox.writes() - w0
        reads = sandbox.requests() - q0 - w
        need: Counter = Counter()
        for *_, m in rounds:
            need.update(m)
        f["round writes"] = sum(w.values())
        for (verb, res), v in w.items():
            f[f"round {res}"] = f.get(f"round {res}", 0) + v
        f["min writes"] = sum(need.values())
        for k, v in need.items():
            f[f"min {k}"] = v
        f["round reconciles"] = len(rounds)
        if rounds:
            f["change-point reconcile writes"] = rounds[0][2]
        run.notes.append(f"round writes: {kinds(w)}; reads meanwhile: {kinds(+reads)}")
        after = sandbox.managed(PREFIX, (KEYS.telemetry,))
        changed = changed_objects(before, after)
        f["changed objects"] = sum(changed.values())
        run.notes.append(f"objects whose managed fields differ before/after the round (net): {dict(changed)}")
        run.notes.append("round reconciles: writes / independent minimum: " + "; ".join(
            f"#{i + 1} at stage {t0 - t_stage:+.1f} s, {wall_s:.1f} s long: {writes} / {sum(m.values())} "
            f"{dict(m) or ''}" for i, (t0, wall_s, writes, m) in enumerate(rounds)))

        # 5. steady state after the round
        wall.at(AFTER)
        _, split, w = reconcile_timed(r, sandbox)
        f["after writes"] = sum(w.values())
        if w:
            run.notes.append(f"writes after the round at {AFTER}: {kinds(w)}")
        api.close()
    finally:
        sandbox.stop()
    if profiling:
        for title, p in profiles.items():
            if p is None:
                continue
            stats = pstats.Stats(p) if isinstance(p, str) else p
            benchlib.print_top(stats, args.top, f"{title}, {n:,} nodes")
            benchlib.print_top(pstats.Stats(p) if isinstance(p, str) else p, 12, f"{title}, {n:,} nodes",
                               sort="tottime")
    return run


def round_by_daemon(f: dict, run: Run, api, source, sandbox: SandboxProcess, args, lead: float) -> float:
    """The real Daemon, with the Watcher `run` starts, on a real-time clock `lead` seconds before
    the stage start: its start reconcile (nothing to write), then the change-point job fires 1 s
    past the stage start; the watch wakes follow-up reconciles until one writes nothing.
    Returns the instant (time.monotonic) the programme clock reached the stage start."""
    metrics = Metrics()
    clock = Clock(start=STAGE2 - timedelta(seconds=lead))
    t_stage = time.monotonic() + clock.wall_seconds_until(STAGE2)
    r = Reconciler(source, ClusterReader(api, KEYS), clock, metrics, Writer(api))
    daemon = Daemon(r, source, clock, metrics, reconcile_every=3600, namespace=LEASE_NS)
    t_begin = time.monotonic()
    sandbox.call("clear_write_times")
    s0, p0 = sandbox.call("cpu"), time.process_time()
    daemon.start()
    watcher = None if args.no_watch else Watcher(api, KEYS, on_change=daemon.changed).start()
    last_write = [t_stage]

    def settled() -> bool:
        last = r.last
        if last is None or last.plan is None or last.plan.at < STAGE2 or r.lock.locked():
            return False
        if daemon.busy() or daemon.scheduler.get_job("watch"):
            return False
        times = sandbox.call("write_times")
        if times:
            last_write[0] = max(times)
        return (last.writes == 0 or watcher is None) and time.monotonic() - last_write[0] > daemon.debounce + 1
    try:
        deadline = t_stage + 600
        while time.monotonic() < deadline and not settled():
            time.sleep(0.1)
        if not settled():
            raise SystemExit("bench_reconcile: the round did not settle within 10 minutes of the stage start")
    finally:
        if watcher is not None:
            watcher.stop()
        daemon.stop()
    f["round daemon process cpu"] = time.process_time() - p0
    f["round sandbox cpu"] = sandbox.call("cpu") - s0
    calls = REC.since(t_begin)
    early = [c for c in calls if c.name == "reconcile" and c.t0 < t_stage]
    if any(c.t1 > t_stage for c in early):
        run.notes.append("WARNING: a reconcile started before the stage start was still running at it "
                         "(raise --lead): the latency includes its tail")
    times = sandbox.call("write_times")
    if any(t < t_stage for t in times):
        run.notes.append(f"WARNING: {sum(1 for t in times if t < t_stage)} writes before the stage start")
    rounds = [c for c in calls if c.name == "reconcile" and c.t0 >= t_stage]
    first = rounds[0]
    split = phase_split([c for c in calls if c.name != "reconcile" and first.t0 <= c.t0 <= first.t1])
    f.update({f"round {k}": v for k, v in split.items()})
    f["round total"] = first.wall
    f["round cpu"], f["round proc_cpu"] = first.cpu, first.process_cpu
    f["lead"] = lead
    f["stage -> reconcile starts"] = first.t0 - t_stage
    times = [t for t in times if t >= t_stage]
    if times:
        f["stage -> first write"] = min(times) - t_stage
        f["stage -> last write"] = max(times) - t_stage
        f["stage -> last write of #1"] = max((t for t in times if t <= first.t1), default=first.t1) - t_stage
    f["daemon start reconcile"] = median(c.wall for c in early) if early else 0.0
    return t_stage


# --------------------------------------------------------------------------- report

def show(size: int, runs: list[Run], data_mib: float, gen_s: float) -> dict[str, float]:
    keys = {k for r in runs for k in r.figures}
    med = {k: median(r.figures.get(k, 0.0) for r in runs) for k in keys}

    def each(k: str, spec: str = ".2f") -> str:
        return "  ".join(format(r.figures.get(k, 0.0), spec) for r in runs)

    print(f"\n=== {size:,} nodes: medians of {len(runs)} run(s) (each run's figure in brackets) ===")
    print(f"cluster JSON: {data_mib:.1f} MiB, generated in {gen_s:.1f} s")
    print(f"sandbox load_list (in its process): {med['load']:.2f} s wall, {med['load cpu']:.2f} s CPU   [{each('load')}]")
    fw = max(med["first writes"], 1)
    print(f"cold start (connect -> first reconcile done, unlabelled cluster): {med['cold start']:.2f} s   "
          f"[{each('cold start')}]")
    print(f"  read {med.get('first read', 0):.2f} s, plan {med.get('first plan', 0):.2f} s, diff "
          f"{med.get('first diff', 0):.2f} s, writes {med.get('first write', 0):.2f} s; "
          f"{med['first writes']:.0f} writes ({med['first writes'] / max(med.get('first write', 1e-9), 1e-9):.0f}/s), "
          f"{med['first failed']:.0f} failed")
    print(f"  CPU: daemon thread {med['first cpu']:.2f} s (read {med.get('first read cpu', 0):.2f}, plan "
          f"{med.get('first plan cpu', 0):.2f}, diff {med.get('first diff cpu', 0):.2f}, writes "
          f"{med.get('first write cpu', 0):.2f} = {1000 * med.get('first write cpu', 0) / fw:.2f} ms a write); "
          f"sandbox process {med['first sandbox_cpu']:.2f} s ({1000 * med['first sandbox_cpu'] / fw:.2f} ms a request)")
    print(f"steady-state reconcile: {med['steady']:.2f} s (read {med['steady read']:.2f}, plan {med['steady plan']:.2f}, "
          f"diff {med['steady diff']:.2f}); CPU daemon thread {med['steady cpu']:.2f} s, sandbox "
          f"{med['steady sandbox_cpu']:.2f} s   [{each('steady')}]")
    sw = max(r.figures["steady writes"] for r in runs)
    print(f"  {verdict(sw == 0)}  API writes at steady state: {sw:.0f} (must be 0)")
    print(f"round 1 (stage-2 start {STAGE2.isoformat()}), until a reconcile writes nothing "
          f"({med['round reconciles']:.0f} reconciles):")
    rw, mw = med["round writes"], med["min writes"]
    parts = ", ".join(f"{k} {med.get('min ' + k, 0):.0f}" for k in ("nodes", "namespaces", "resourcequotas", "events"))
    got = ", ".join(f"{k} {med.get('round ' + k, 0):.0f}" for k in ("nodes", "namespaces", "resourcequotas", "events"))
    print(f"  API writes {rw:.0f} ({got}), {med.get('change-point reconcile writes', 0):.0f} of them by the "
          f"change-point reconcile; minimum {mw:.0f} ({parts}); net objects changed {med['changed objects']:.0f}")
    print(f"  {verdict(all(r.figures['round writes'] == r.figures['min writes'] for r in runs))}  "
          f"round writes = the independently computed minimum ({rw / mw if mw else float('nan'):.2f}x)")
    if "stage -> last write" in med:
        print(f"  latency from the stage start: change-point reconcile starts +{med['stage -> reconcile starts']:.2f} s "
              f"(armed 1 s past the change point), first write +{med['stage -> first write']:.2f} s, last write of "
              f"that reconcile +{med['stage -> last write of #1']:.2f} s, last write of the round "
              f"+{med['stage -> last write']:.2f} s   [{each('stage -> last write')}]")
    if "round total" in med:
        print(f"  the change-point reconcile: {med['round total']:.2f} s (read {med.get('round read', 0):.2f}, plan "
              f"{med.get('round plan', 0):.2f}, diff {med.get('round diff', 0):.2f}, writes {med.get('round write', 0):.2f}); "
              f"CPU daemon thread {med['round cpu']:.2f} s"
              + (f"; whole round: daemon process {med['round daemon process cpu']:.2f} s CPU (watch threads "
                 f"included), sandbox {med['round sandbox cpu']:.2f} s; daemon's start reconcile "
                 f"{med['daemon start reconcile']:.2f} s, lead {med['lead']:.0f} s" if "lead" in med else ""))
    aw = max(r.figures["after writes"] for r in runs)
    print(f"  {verdict(aw == 0)}  API writes at steady state after the round ({AFTER.isoformat()}): {aw:.0f} (must be 0)")
    for note in runs[0].notes:
        print(f"  - {note}")
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="1000,10000", help="cluster sizes, comma separated (default 1000,10000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per size (median; default 3; 0 with --profile: "
                                                        "only the profiled pass)")
    ap.add_argument("--steady-runs", type=int, default=3, help="steady-state reconciles per run (default 3)")
    ap.add_argument("--lead", type=float, default=10.0,
                    help="seconds from the daemon's start to the stage start (at least 4x a steady reconcile + 8)")
    ap.add_argument("--no-watch", action="store_true",
                    help="run the round's daemon without the Watcher (follow-ups then wait for the periodic reconcile)")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="leave the sandbox's loaded objects to its garbage collector (default: gc.freeze() after load)")
    benchlib.add_profile_argument(ap)
    ap.add_argument("--profile", action="store_true", help="add one profiled pass per size (top entries printed)")
    ap.add_argument("--top", type=int, default=25, help="profile entries to print (default 25)")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.nodes.split(",") if s.strip()})

    os.chdir(ROOT)
    REC.install()
    tmp = Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-reconcile-"))
    global POLICY_DIR
    POLICY_DIR = copy_one_cluster(tmp / "policies")
    source = PolicySource(POLICY_DIR)
    source.reload()
    benchlib.use_profile(args.nodes_profile)
    benchlib.check_generator(source.policy)
    benchlib.header("bench_reconcile: the daemon against the sandbox API (its own process) over HTTP")
    print(f"nodes: {benchlib.node_shape(source.policy)}")
    print("policy: the real programme as one cluster (tests/realpolicy.py: policies/ without its clusters list and "
          "its pools' cluster)", flush=True)
    started = time.monotonic()
    meds: dict[int, dict[str, float]] = {}
    for size in sizes:
        t0 = time.monotonic()
        path = tmp / f"cluster-{size}.json"
        path.write_bytes(benchlib.cluster_bytes(size, source.policy, [LEASE_NS]))
        gen_s = time.monotonic() - t0
        runs = []
        for i in range(args.runs):
            runs.append(one_run(size, path, args))
            gc.collect()
            print(f"[{size} nodes] run {i + 1}/{args.runs} done ({time.monotonic() - started:.0f} s so far)",
                  flush=True)
        if runs:
            meds[size] = show(size, runs, path.stat().st_size / 2**20, gen_s)
        if args.profile:
            print(f"\n[{size} nodes] profiled pass (cProfile slows the profiled code down; the figures above are "
                  f"unprofiled)", flush=True)
            one_run(size, path, args, profiling=True)
        path.unlink()
    shutil.rmtree(tmp, ignore_errors=True)  # the one-cluster policy (each cluster file is gone already)
    if len(meds) > 1:
        print("\ngrowth between sizes (exponent k in t ~ n^k, medians):")
        names = [("sandbox load", "load"), ("cold start", "cold start"), ("first read", "first read"),
                 ("first plan", "first plan"), ("first diff", "first diff"), ("first writes", "first write"),
                 ("steady reconcile", "steady"), ("steady read", "steady read"), ("steady plan", "steady plan"),
                 ("steady diff", "steady diff"), ("change-point reconcile", "round total"),
                 ("stage -> last write", "stage -> last write")]
        ordered = sorted(meds)
        for a, b in zip(ordered, ordered[1:]):
            ma, mb = meds[a], meds[b]
            print(f"  {a:,} -> {b:,}: " + ", ".join(
                f"{label} {fmt_exp(exponent(a, ma.get(k, 0), b, mb.get(k, 0)))}" for label, k in names if k in ma))
    print(f"\nload average at the end: {benchlib.load_average()}; bench_reconcile took "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
