"""Benchmark: the whole `gpu-scheduler plan` (and `simulate`) process against the floor of
reading the same cluster file with `json.load`, at several cluster sizes; decoding and planning
in-process against `json.loads` of the same bytes; and the start-up of `--help` and `validate`.

    .venv/bin/python tests/benchmarks/bench_plan.py [--sizes 1000,10000,50000] [--runs 3]
                                                    [--nodes-profile typical|large|both] [--profile]

For each size it writes a synthetic `kubectl get nodes,namespaces -o json` file (a v1 List of GPU
nodes of the chosen node-size profile, benchlib.py: typical about 5.7 KB a node, large 8.1 KiB;
spread over the pools of the real programme, plus the consortia's namespaces). The real programme
spans several clusters and a cluster file is one cluster, so `plan`, `simulate` and the in-process
children plan with the real programme as one cluster (tests/realpolicy.py: `policies/` without its
`clusters:` list and its pools' `cluster:`, written into this run's temporary folder); `validate`
reads `policies/` itself, since it plans on no cluster. About
60% of the nodes are already owned (labelled `consortium=<team>`, `node-state=assigned`, tainted)
by a team chosen at random among every consortium but one, so a plan at
2026-03-01T00:00:00+09:00 keeps some nodes, drains many (eliminated and pending teams, teams above
their quota) and assigns some (the team that owns nothing). A file with no nodes (the namespaces
only) measures the fixed cost: start-up, imports, policy.

Every whole-process measurement is a fresh child process, so interpreter start-up and imports
count, as they do for a user at a shell. Each child's wall time is taken around its spawn and
reaping, and its CPU time and peak resident set size come from wait4()'s rusage of that child
alone; it is forked from a small go-between process (benchlib.run_measured), since Linux would
otherwise count this script's own resident memory in the child's peak. The figures are medians
over --runs runs; runs of the different commands are interleaved, so drift in the machine's speed
hits them alike. The same file is used by every command at a size.

In-process (one child per size): the file's bytes are read once, then, alternating, `json.loads`
of them, `decode_snapshot` of them, and `plan()` of the decoded snapshot, each timed alone
(medians); and in three more children, the memory each result holds (resident set after minus
before, the result alive). `simulate` replays the real programme (`--from 2025-08-01 --to
2027-01-31`) and the number of plans it makes is counted from its JSON.

It prints the ratios to the floor, PASS/MISS against the targets, and how time and memory grow
with size (as exponents: t ~ n^k; k near 1 is linear, near 2 quadratic). `--profile` adds, per
size, an unprofiled split of `plan` into phases (imports, policy, decode, plan, render) and a
cProfile of the whole command: its top entries by cumulative time at the largest size, and each
function's own time across sizes with its growth exponent.

Nothing here is a pass/fail test: it prints figures; the targets are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import ROOT, exponent, fmt_exp, median, verdict  # noqa: E402

from tests.realpolicy import copy_one_cluster, one_cluster_policy  # noqa: E402  (the real programme as one cluster)

AT = "2026-03-01T00:00:00+09:00"
SIM_FROM, SIM_TO = "2025-08-01", "2027-01-31"   # the real programme, end to end
TIME_TARGETS = {10_000: 0.5, 50_000: 0.45}   # plan time / json.load time, whole processes
MEMORY_TARGET = 0.5                          # plan peak RSS / json.load peak RSS, at 10k and 50k
SIMULATE_TARGET_S = 3.0                      # simulate of the real programme on 10,000 nodes
HELP_TARGET_S = 0.12                         # `gpu-scheduler --help`, whole process
VALIDATE_TARGET_S = 0.3                      # `gpu-scheduler validate --policy policies`, whole process

# The policy folder `plan`, `simulate` and the in-process children read: the real programme as one
# cluster (tests/realpolicy.py), written into this run's temporary folder by main().
POLICY_DIR: Path | None = None

# kept for callers of the old module-level names
write_cluster = benchlib.write_cluster
check_generator = benchlib.check_generator

# What every child below does first, with `policy_dir` set: load the policy and the label keys
# planning reads.
POLICY_AND_KEYS = r"""
keys = Keys()
policy = load_policy(policy_dir)  # the real programme as one cluster (tests/realpolicy.py)
try:  # decode only the node labels planning reads, as `plan` and the daemon do (where the code can)
    from scheduler.planner.nodes import label_keys
    keys = keys.reading(label_keys(policy))
except (ImportError, AttributeError):
    pass
"""

# An unprofiled `plan`, split into the phases cmd_plan goes through (same calls, same order).
PHASES = r"""
import time; t0 = time.perf_counter()
import gc, json, sys
from scheduler.cli.commands import _instant
from scheduler.cluster import Keys, decode_snapshot_file
from scheduler.planner import plan
from scheduler.policy import load_policy
from scheduler.cli.render import plan_json
t1 = time.perf_counter()
gc.disable()  # as `gpu-scheduler plan` runs (scheduler.cli.main)
policy_dir = sys.argv[3]
""" + POLICY_AND_KEYS + r"""t2 = time.perf_counter()
snapshot = decode_snapshot_file(sys.argv[1], keys); t3 = time.perf_counter()
result = plan(policy, snapshot, _instant(sys.argv[2], policy), keys); t4 = time.perf_counter()
text = plan_json(result); t5 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "load policy": t2 - t1, "decode": t3 - t2, "plan()": t4 - t3,
                  "render JSON": t5 - t4, "plan MiB": len(text) / 2**20}))
"""

# In-process, one child per size: json.loads, decode_snapshot and plan() of the same bytes,
# alternating, each timed alone. json.loads runs as in the json.load-only process (collector on)
# and once more with the collector off (printed for reference); decode_snapshot pauses the
# collector itself; plan() runs with it off, as `gpu-scheduler plan` runs it (the daemon pauses it
# around plan() too).
INPROCESS = r"""
import gc, json, sys, time
from scheduler.cli.commands import _instant
from scheduler.cluster import Keys, decode_snapshot
from scheduler.planner import plan
from scheduler.policy import load_policy
path, at, runs, policy_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
""" + POLICY_AND_KEYS + r"""instant = _instant(at, policy)
data = open(path, "rb").read()
out = {"json.loads": [], "json.loads gc off": [], "decode": [], "plan()": []}
for _ in range(runs):
    gc.collect()
    t0 = time.perf_counter(); doc = json.loads(data); out["json.loads"].append(time.perf_counter() - t0)
    del doc; gc.collect()
    gc.disable()
    t0 = time.perf_counter(); doc = json.loads(data); out["json.loads gc off"].append(time.perf_counter() - t0)
    gc.enable(); del doc; gc.collect()
    t0 = time.perf_counter(); snapshot = decode_snapshot(data, keys); out["decode"].append(time.perf_counter() - t0)
    gc.collect()
    gc.disable()
    t0 = time.perf_counter(); result = plan(policy, snapshot, instant, keys)
    out["plan()"].append(time.perf_counter() - t0)
    gc.enable()
    del result, snapshot
out["nodes"] = len(decode_snapshot(data, keys).nodes)
print(json.dumps(out))
"""

# The memory one result holds (one child each): the bytes of the Python objects still alive
# (mode "live", tracemalloc: what the result itself keeps), or the resident set after minus before
# (mode "rss", without tracemalloc: what the process keeps, freed intermediates included until the
# allocator hands them back).
RETAINED = r"""
import gc, json, sys, tracemalloc
from scheduler.cli.commands import _instant
from scheduler.cluster import Keys, decode_snapshot
from scheduler.planner import plan
from scheduler.policy import load_policy

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

mode, kind, path, at, policy_dir = sys.argv[1:6]
""" + POLICY_AND_KEYS + r"""instant = _instant(at, policy)
data = open(path, "rb").read()
gc.collect(); before = rss()
if mode == "live":
    tracemalloc.start()
if kind == "json.loads":
    held = json.loads(data)
elif kind == "decode":
    held = decode_snapshot(data, keys)
else:
    gc.disable()
    snapshot = decode_snapshot(data, keys)
    held = (snapshot, plan(policy, snapshot, instant, keys))
gc.collect()
if mode == "live":
    print(json.dumps({"mib": tracemalloc.get_traced_memory()[0] / 2**20}))
else:
    print(json.dumps({"mib": (rss() - before) / 1024}))
"""

# The whole `gpu-scheduler <argv>` under cProfile (imports included), stats dumped to a file.
PROFILE = r"""
import cProfile, contextlib, os, sys
out, argv = sys.argv[1], sys.argv[2:]
prof = cProfile.Profile()
with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
    prof.enable()
    from scheduler.cli import main
    rc = main(argv)
    prof.disable()
prof.dump_stats(out)
sys.exit(rc)
"""


# --------------------------------------------------------------------------- measuring

@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)

    @property
    def s(self) -> float:
        return median(self.seconds)

    @property
    def cpu_s(self) -> float:
        return median(self.cpu)

    @property
    def mib(self) -> float:
        return median(self.peak_kib) / 1024


ENV: dict[str, str] | None = None  # set in main(): byte-code cached outside the repository


def measure(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """Run `cmd` in a fresh process: its wall time, its CPU time (user + system) and its own
    peak RSS (KiB), the last two from wait4()'s rusage of that child alone (benchlib.run_measured:
    forked from a small go-between, so that this script's own memory does not count)."""
    with tempfile.TemporaryFile() as err:
        elapsed, cpu, kib, rc = benchlib.run_measured(cmd, stdout=stdout, stderr=err, cwd=ROOT, env=ENV)
        if rc != 0:
            err.seek(0)
            raise SystemExit(f"bench_plan: {' '.join(cmd)} exited {rc}:\n"
                             f"{err.read().decode(errors='replace')[-3000:]}")
    return elapsed, cpu, kib


def gpu_scheduler() -> list[str]:
    script = Path(sys.executable).parent / "gpu-scheduler"
    if script.exists():
        return [str(script)]
    found = shutil.which("gpu-scheduler")
    return [found] if found else [sys.executable, "-m", "scheduler"]


def policy_dir() -> str:
    """The real programme as one cluster (tests/realpolicy.py), as main() wrote it."""
    assert POLICY_DIR is not None, "main() writes the one-cluster policy first"
    return str(POLICY_DIR)


def plan_argv(path: Path) -> list[str]:
    return ["plan", "--policy", policy_dir(), "--cluster", str(path), "--at", AT, "-o", "json"]


def commands(path: Path) -> dict[str, list[str]]:
    gs = gpu_scheduler()
    return {
        "json": [sys.executable, "-c", "import json,sys; json.load(open(sys.argv[1],'rb'))", str(path)],
        "plan": gs + plan_argv(path),
        "simulate": gs + ["simulate", "--policy", policy_dir(), "--cluster", str(path),
                          "--from", SIM_FROM, "--to", SIM_TO, "-o", "json"],
    }


def startup_commands() -> dict[str, list[str]]:
    gs = gpu_scheduler()
    # validate plans on no cluster: it reads the real policies/ as they are
    return {"--help": gs + ["--help"], "validate": gs + ["validate", "--policy", "policies"]}


def simulate_plans(cmd: list[str]) -> int:
    """One untimed simulate run: how many plans it makes (the length of its JSON)."""
    with tempfile.TemporaryFile() as out:
        measure(cmd, stdout=out)
        out.seek(0)
        return len(json.load(out))


def in_process(path: Path, runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryFile() as out:
        measure([sys.executable, "-c", INPROCESS, str(path), AT, str(max(1, runs)), policy_dir()], stdout=out)
        out.seek(0)
        return json.load(out)


def retained(path: Path) -> dict[str, float]:
    """MiB each result holds, each in a fresh child: '<kind>' the live objects (tracemalloc),
    '<kind> rss' the resident set's growth."""
    got = {}
    for mode in ("live", "rss"):
        for kind in ("json.loads", "decode", "decode + plan()"):
            with tempfile.TemporaryFile() as out:
                measure([sys.executable, "-c", RETAINED, mode, kind, str(path), AT, policy_dir()], stdout=out)
                out.seek(0)
                got[kind + (" rss" if mode == "rss" else "")] = json.load(out)["mib"]
    return got


def plan_work(path: Path, owners: dict[str, str], cmd: list[str]) -> str:
    """One untimed plan run (it also fills the byte-code cache): what the plan does."""
    with tempfile.TemporaryFile() as out:
        measure(cmd, stdout=out)
        out.seek(0)
        result = json.load(out)
    counts: dict[str, int] = {}
    for a in result["actions"]:
        counts[a["action"]] = counts.get(a["action"], 0) + 1
    keeps = sum(1 for c in result["consortia"] for n in c["nodes"] if owners.get(n) == c["name"])
    return (f"{len(owners)} owned nodes in -> {keeps} kept, {counts.get('assign', 0)} assign, "
            f"{counts.get('drain', 0)} drain, {counts.get('evict', 0)} evict, "
            f"{counts.get('release', 0)} release")


def phases(path: Path) -> dict[str, float]:
    with tempfile.TemporaryFile() as out:
        measure([sys.executable, "-c", PHASES, str(path), AT, policy_dir()], stdout=out)
        out.seek(0)
        return json.load(out)


def profile(path: Path, folder: Path, runs: int) -> tuple[pstats.Stats, dict[str, tuple[float, float, int]]]:
    """`runs` profiled runs of plan: the stats of the fastest, and each function's least own time
    over the runs (the least disturbed by other work on the machine)."""
    best: pstats.Stats | None = None
    least: dict[str, tuple[float, float, int]] = {}
    for i in range(max(1, runs)):
        dump = folder / f"{path.stem}-{i}.prof"
        measure([sys.executable, "-c", PROFILE, str(dump), *plan_argv(path)])
        stats = pstats.Stats(str(dump))
        if best is None or stats.total_tt < best.total_tt:  # type: ignore[attr-defined]
            best = stats
        for name, row in benchlib.own_times(stats).items():
            if name not in least or row[0] < least[name][0]:
                least[name] = row
    assert best is not None
    return best, least


# --------------------------------------------------------------------------- report

def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


@dataclass
class Measured:
    """Everything measured for one node-size profile."""
    profile: str
    shape: str
    rows: list = field(default_factory=list)            # (size, file MiB, {command: Series})
    baseline: tuple | None = None
    inproc: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    held: dict[int, dict[str, float]] = field(default_factory=dict)
    plans: dict[int, int] = field(default_factory=dict)  # simulate: plans made, per size
    phase_rows: dict[int, dict[str, float]] = field(default_factory=dict)
    profiles: dict[int, tuple[pstats.Stats, dict]] = field(default_factory=dict)

    def by_size(self) -> dict[int, dict[str, Series]]:
        return {size: sr for size, _, sr in self.rows}


def report(m: Measured) -> None:
    rows, baseline = m.rows, m.baseline
    print(f"\n=== nodes profile {m.profile}: whole processes (medians) ===")
    head = (f"{'nodes':>7} {'file MiB':>9} {'json.load s':>11} {'peak MiB':>9} {'plan s':>8} {'peak MiB':>9} "
            f"{'time x':>7} {'mem x':>6} {'cpu x':>6} {'simulate s':>10} {'plans':>6} {'peak MiB':>9}")
    print(head)
    print("-" * len(head))
    for size, mib, sr in ([baseline] if baseline else []) + rows:
        j, p, sim = sr["json"], sr["plan"], sr.get("simulate")
        print(f"{size:>7} {mib:>9.1f} {j.s:>11.3f} {j.mib:>9.0f} {p.s:>8.3f} {p.mib:>9.0f} "
              f"{p.s / j.s:>7.2f} {p.mib / j.mib:>6.2f} {p.cpu_s / j.cpu_s:>6.2f} "
              f"{fmt(sim.s if sim else None, '.3f'):>10} {m.plans.get(size, '-') if sim else '-':>6} "
              f"{fmt(sim.mib if sim else None, '.0f'):>9}")
    print("time x = plan wall time / json.load wall time; mem x = plan peak RSS / json.load peak RSS;\n"
          "cpu x = plan CPU time / json.load CPU time (whole processes, medians)")
    print("\nCPU time (user + system), medians: " + "; ".join(
        f"{size}: json.load {sr['json'].cpu_s:.2f} s, plan {sr['plan'].cpu_s:.2f} s"
        + (f", simulate {sr['simulate'].cpu_s:.2f} s" if "simulate" in sr else "")
        for size, _, sr in ([baseline] if baseline else []) + rows))

    if m.inproc:
        n = len(next(iter(m.inproc.values()))["decode"])
        print(f"\nin-process, the same bytes (medians of {n} alternating runs; "
              f"seconds; x = against json.loads with the collector on, as in the json.load-only process):")
        head = (f"  {'nodes':>7} {'json.loads':>10} {'(gc off)':>9} {'decode':>8} {'x':>6} {'plan()':>8} {'x':>6} "
                f"{'decode+plan x':>13} {'live MiB: json':>15} {'snapshot':>9} {'+plan':>7} "
                f"{'RSS MiB: json':>14} {'snapshot':>9} {'+plan':>7}")
        print(head)
        for size, r in m.inproc.items():
            jl, jo, d, pl = (median(r[k]) for k in ("json.loads", "json.loads gc off", "decode", "plan()"))
            h = m.held.get(size, {})
            print(f"  {size:>7} {jl:>10.3f} {jo:>9.3f} {d:>8.3f} {d / jl:>6.2f} {pl:>8.3f} {pl / jl:>6.2f} "
                  f"{(d + pl) / jl:>13.2f} {fmt(h.get('json.loads'), '.0f'):>15} {fmt(h.get('decode'), '.0f'):>9} "
                  f"{fmt(h.get('decode + plan()'), '.0f'):>7} {fmt(h.get('json.loads rss'), '.0f'):>14} "
                  f"{fmt(h.get('decode rss'), '.0f'):>9} {fmt(h.get('decode + plan() rss'), '.0f'):>7}")
        print("  what the result keeps (json.loads' dicts; the decoded Snapshot; the Snapshot and its Plan), each in a "
              "fresh process:\n  live MiB = its Python objects (tracemalloc); RSS MiB = the resident set after minus "
              "before (freed intermediates included while the allocator keeps them)")

    by_size = m.by_size()
    print(f"\ntargets ({m.profile} nodes), on wall time as defined; [on CPU time] for a noisy machine:")
    for size, target in TIME_TARGETS.items():
        if size in by_size:
            sr = by_size[size]
            x, cx = sr["plan"].s / sr["json"].s, sr["plan"].cpu_s / sr["json"].cpu_s
            print(f"  {verdict(x <= target)}  plan time at {size:,} nodes: {x:.2f}x json.load "
                  f"(target <= {target}x)   [cpu {cx:.2f}x: {verdict(cx <= target)}]")
    for size in TIME_TARGETS:
        if size in by_size:
            sr = by_size[size]
            x = sr["plan"].mib / sr["json"].mib
            print(f"  {verdict(x <= MEMORY_TARGET)}  plan peak memory at {size:,} nodes: {x:.2f}x json.load "
                  f"(target <= {MEMORY_TARGET}x)")
    if 10_000 in by_size and "simulate" in by_size[10_000]:
        s = by_size[10_000]["simulate"].s
        print(f"  {verdict(s <= SIMULATE_TARGET_S)}  simulate of the real programme ({SIM_FROM}..{SIM_TO}, "
              f"{m.plans.get(10_000, '?')} plans) at 10,000 nodes: {s:.2f} s (target <= {SIMULATE_TARGET_S:g} s)")
    missing = [f"{s:,}" for s in TIME_TARGETS if s not in by_size]
    if missing:
        print(f"  (sizes {', '.join(missing)} not measured: no verdict)")

    if len(rows) > 1:
        print("\ngrowth between sizes (ratios of medians, and the exponent k in t ~ n^k; 'net' subtracts the "
              "0-node file's figure, i.e. start-up, imports and policy)")
        for (a, _, sa), (b, _, sb) in zip(rows, rows[1:]):
            print(f"  {a:,} -> {b:,} nodes (x{b / a:g}):")
            for k in ("json", "plan", "simulate"):
                if k not in sa or k not in sb:
                    continue
                t_a, t_b, m_a, m_b = sa[k].s, sb[k].s, sa[k].mib, sb[k].mib
                c_a, c_b = sa[k].cpu_s, sb[k].cpu_s
                line = (f"    {k:9s} time x{t_b / t_a:5.2f} ({fmt_exp(exponent(a, t_a, b, t_b))}), "
                        f"cpu x{c_b / c_a:5.2f} ({fmt_exp(exponent(a, c_a, b, c_b))}), "
                        f"memory x{m_b / m_a:5.2f} ({fmt_exp(exponent(a, m_a, b, m_b))})")
                if baseline and k in baseline[2]:
                    z = baseline[2][k]
                    line += (f"; net cpu {fmt_exp(exponent(a, c_a - z.cpu_s, b, c_b - z.cpu_s))}, "
                             f"net memory {fmt_exp(exponent(a, m_a - z.mib, b, m_b - z.mib))}")
                print(line)


def report_startup(startup: dict[str, Series]) -> None:
    if not startup:
        return
    print("\nstart-up, whole processes (medians): " + "; ".join(
        f"gpu-scheduler {k} {v.s:.3f} s ({v.cpu_s:.3f} s CPU, {v.mib:.0f} MiB)" for k, v in startup.items()))
    for k, target in (("--help", HELP_TARGET_S), ("validate", VALIDATE_TARGET_S)):
        if k in startup:
            what = "--help" if k == "--help" else "validate --policy policies"
            print(f"  {verdict(startup[k].s <= target)}  gpu-scheduler {what}: {startup[k].s:.3f} s "
                  f"(target <= {target:g} s)")


def report_both(measured: list[Measured]) -> None:
    """The two profiles side by side: how much the node size moves each ratio."""
    if len(measured) < 2:
        return
    print("\n=== node-size profiles side by side (medians) ===")
    sizes = sorted(set.intersection(*(set(x.by_size()) for x in measured)))
    head = (f"  {'nodes':>7} {'profile':>8} {'file MiB':>9} {'time x':>7} {'cpu x':>6} {'mem x':>6} "
            f"{'decode x':>9} {'plan() x':>9}")
    print(head)
    for size in sizes:
        for x in measured:
            sr = x.by_size()[size]
            mib = next(mb for sz, mb, _ in x.rows if sz == size)
            r = x.inproc.get(size)
            dx = px = None
            if r:
                jl = median(r["json.loads"])
                dx, px = median(r["decode"]) / jl, median(r["plan()"]) / jl
            print(f"  {size:>7} {x.profile:>8} {mib:>9.1f} {sr['plan'].s / sr['json'].s:>7.2f} "
                  f"{sr['plan'].cpu_s / sr['json'].cpu_s:>6.2f} {sr['plan'].mib / sr['json'].mib:>6.2f} "
                  f"{fmt(dx, '.2f'):>9} {fmt(px, '.2f'):>9}")
    print("  x = against json.load (whole process) or json.loads (in-process) of the same file")


def report_profiles(phase_rows, profiles, top: int, runs: int) -> None:
    if phase_rows:
        names = [k for k in next(iter(phase_rows.values())) if k != "plan MiB"]
        print(f"\nplan, split into phases (unprofiled; least of {runs} runs per size, seconds):")
        print(f"  {'nodes':>7} " + " ".join(f"{n:>12}" for n in names) + f" {'plan MiB':>9}")
        for size, ph in phase_rows.items():
            print(f"  {size:>7} " + " ".join(f"{ph[n]:>12.3f}" for n in names) + f" {ph['plan MiB']:>9.1f}")
        sizes = list(phase_rows)
        if len(sizes) > 1:
            for a, b in zip(sizes, sizes[1:]):
                print(f"  growth {a:,} -> {b:,}: " + ", ".join(
                    f"{n} {fmt_exp(exponent(a, phase_rows[a][n], b, phase_rows[b][n]))}"
                    for n in names if n not in ("imports", "load policy")))
    if not profiles:
        return
    largest = max(profiles)
    benchlib.print_top(profiles[largest][0], top, f"gpu-scheduler plan on {largest:,} nodes (whole process, "
                                                  f"fastest of {runs} profiled runs)")
    sizes = sorted(profiles)
    own = {s: profiles[s][1] for s in sizes}
    ranked = sorted(own[largest].items(), key=lambda kv: -kv[1][0])[:top]
    print(f"\n--- own time per function across sizes (profiled seconds, least of {runs} runs; top {top} at "
          f"{largest:,} nodes), with the growth exponent between the two largest sizes ---")
    print("  " + " ".join(f"{s:>9,}" for s in sizes) + f" {'calls@' + format(largest, ','):>14} {'growth':>8}  function")
    for name, (tt, ct, nc) in ranked:
        vals = [own[s].get(name, (0.0, 0.0, 0))[0] for s in sizes]
        k = exponent(sizes[-2], vals[-2], sizes[-1], vals[-1]) if len(sizes) > 1 else None
        flag = "  <-- superlinear" if k is not None and k > 1.3 and tt > 0.05 else ""
        print("  " + " ".join(f"{v:>9.3f}" for v in vals) + f" {nc:>14,} {fmt_exp(k):>8}  {name}{flag}")


# --------------------------------------------------------------------------- main

def series_line(name: str, sr: Series) -> str:
    return f"    {name:9s} " + "  ".join(f"{s:.2f}s ({cpu:.2f}s cpu) {kib / 1024:.0f}MiB"
                                        for s, cpu, kib in zip(sr.seconds, sr.cpu, sr.peak_kib))


def measure_startup(runs: int) -> dict[str, Series]:
    cmds = startup_commands()
    for cmd in cmds.values():  # untimed: fills the byte-code cache
        measure(cmd)
    out = {k: Series() for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            s, cpu, kib = measure(cmd)
            out[k].seconds.append(s)
            out[k].cpu.append(cpu)
            out[k].peak_kib.append(kib)
    for k, sr in out.items():
        print(series_line(k, sr), flush=True)
    return out


def measure_profile(name: str, policy, sizes: list[int], tmp: Path, args) -> Measured:
    benchlib.use_profile(name)
    benchlib.check_generator(policy)
    m = Measured(name, benchlib.node_shape(policy))
    print(f"\n--- nodes profile {name}: {m.shape}", flush=True)
    for size in ([] if args.no_baseline else [0]) + sizes:
        path = tmp / f"cluster-{name}-{size}.json"
        t0 = time.perf_counter()
        owners = benchlib.write_cluster(path, size, policy)
        mib = path.stat().st_size / 2**20
        cmds = commands(path)
        print(f"[{name}, {size} nodes] wrote {path.name}: {mib:.1f} MiB in {time.perf_counter() - t0:.1f} s; "
              f"{plan_work(path, owners, cmds['plan'])}", flush=True)
        with_sim = 0 < size <= args.simulate_max and args.simulate_runs > 0
        wanted = ["json", "plan"] + (["simulate"] if with_sim else [])
        if with_sim:
            m.plans[size] = simulate_plans(cmds["simulate"])
        series = {k: Series() for k in wanted}
        for i in range(max(args.runs, args.simulate_runs if with_sim else 0)):
            for k in wanted:
                if (k == "simulate" and i >= args.simulate_runs) or (k != "simulate" and i >= args.runs):
                    continue
                s, cpu, kib = measure(cmds[k])
                series[k].seconds.append(s)
                series[k].cpu.append(cpu)
                series[k].peak_kib.append(kib)
        for k in wanted:
            print(series_line(k, series[k]) + (f"  ({m.plans[size]} plans)" if k == "simulate" else ""), flush=True)
        if size == 0:
            m.baseline = (size, mib, series)
        else:
            m.rows.append((size, mib, series))
            if not args.no_inprocess:
                m.inproc[size] = r = in_process(path, args.runs)
                m.held[size] = retained(path)
                print("    in-process: " + ", ".join(f"{k} {median(r[k]):.3f}s" for k in
                                                     ("json.loads", "json.loads gc off", "decode", "plan()"))
                      + "; held " + ", ".join(f"{k} {v:.0f}MiB" for k, v in m.held[size].items()), flush=True)
            if args.profile:
                runs = [phases(path) for _ in range(max(1, args.runs))]
                m.phase_rows[size] = {k: min(r[k] for r in runs) for k in runs[0]}
                m.profiles[size] = profile(path, tmp, args.runs)
                print(f"    profiled: phases {json.dumps({k: round(v, 3) for k, v in m.phase_rows[size].items()})}",
                      flush=True)
        if not args.keep:
            path.unlink()
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000", help="node counts, comma separated")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each command per size (median; default 3)")
    benchlib.add_profile_argument(ap, both=True)
    ap.add_argument("--simulate-max", type=int, default=10000,
                    help="largest size simulate runs on (default 10000; 0: never)")
    ap.add_argument("--simulate-runs", type=int, default=3,
                    help="timed runs of simulate per size (default 3; 0: none)")
    ap.add_argument("--startup-runs", type=int, default=5,
                    help="timed runs of `--help` and `validate` (default 5; 0: skip)")
    ap.add_argument("--no-inprocess", action="store_true",
                    help="skip the in-process decode / plan() against json.loads comparison")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the cluster files (and the one-cluster policy) here and keep them")
    ap.add_argument("--no-baseline", action="store_true", help="skip the 0-node file (fixed start-up cost)")
    ap.add_argument("--profile", action="store_true",
                    help="also split plan into phases and cProfile it at every size")
    ap.add_argument("--top", type=int, default=25, help="profile entries to print (default 25)")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    names = list(benchlib.PROFILES) if args.nodes_profile == "both" else [args.nodes_profile]

    os.chdir(ROOT)
    policy = one_cluster_policy()  # the real programme as one cluster (tests/realpolicy.py)
    benchlib.use_profile(names[0])
    benchlib.header("bench_plan: the whole `gpu-scheduler plan` process against `json.load` of the same file",
                    names)
    print(f"plan:     gpu-scheduler plan --policy ONE-CLUSTER --cluster FILE --at {AT} -o json >/dev/null")
    print(f"simulate: gpu-scheduler simulate --policy ONE-CLUSTER --cluster FILE --from {SIM_FROM} --to {SIM_TO} "
          f"-o json >/dev/null   (sizes <= {args.simulate_max}; the real programme)")
    print("ONE-CLUSTER: the real programme as one cluster (tests/realpolicy.py: policies/ without its clusters "
          "list and its pools' cluster), written into this run's temporary folder")
    print("floor:    python -c \"import json,sys; json.load(open(sys.argv[1],'rb'))\" FILE")
    print(f"each a fresh process; median of {args.runs} runs ({args.simulate_runs} for simulate); "
          f"peak = that process's max RSS (wait4)", flush=True)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    global ENV, POLICY_DIR
    POLICY_DIR = copy_one_cluster(tmp / "policies")
    ENV = benchlib.child_env(tmp / "pycache")
    started = time.perf_counter()
    measured: list[Measured] = []
    startup: dict[str, Series] = {}
    try:
        if args.startup_runs > 0:
            print(f"\n[start-up] gpu-scheduler --help; gpu-scheduler validate --policy policies "
                  f"({args.startup_runs} runs each, alternating)", flush=True)
            startup = measure_startup(args.startup_runs)
        for name in names:
            measured.append(measure_profile(name, policy, sizes, tmp, args))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    for m in measured:
        report(m)
        if args.profile:
            report_profiles(m.phase_rows, m.profiles, args.top, args.runs)
    report_both(measured)
    report_startup(startup)
    print(f"\nload average at the end: {benchlib.load_average()}")
    print(f"bench_plan took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
