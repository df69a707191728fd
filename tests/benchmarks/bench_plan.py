"""Benchmark: the whole `gpu-scheduler plan` (and `simulate`) process against the floor of
reading the same cluster file with `json.load`, at several cluster sizes.

    .venv/bin/python tests/benchmarks/bench_plan.py [--sizes 1000,10000,50000] [--runs 3]

For each size it writes a synthetic `kubectl get nodes,namespaces -o json` file (a v1 List of
realistic ~8 KB GPU nodes, spread over the pools of the real policy in `policies/`, plus the
consortia's namespaces). About 60% of the nodes are already owned (labelled `consortium=<team>`,
`node-state=assigned`, tainted) by a team chosen at random among every consortium but one, so a
plan at 2026-03-01T00:00:00+09:00 keeps some nodes, drains many (eliminated and pending teams,
teams above their quota, pools not open yet) and assigns some (the team that owns nothing).

Every measurement is a fresh child process, so interpreter start-up and imports count, as they
do for a user at a shell. Each child's wall time is taken around its spawn and reaping, and its
peak resident set size comes from wait4()'s rusage of that child alone. The figures are medians
over --runs runs; runs of the different commands are interleaved, so drift in the machine's
speed hits them alike. The same file is used by every command at a size.

Nothing here is a pass/fail test; the targets are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scheduler.cluster.labels import KEYS  # noqa: E402
from scheduler.cluster.synthetic import dumps, node_object, synthetic_nodes  # noqa: E402
from scheduler.policy import load_policy  # noqa: E402

AT = "2026-03-01T00:00:00+09:00"
SIM_FROM, SIM_TO = "2026-01-14", "2026-03-01"
OWNED_FRACTION = 0.6
UNOWNED_TEAM = "motif"   # owns nothing in the file, so the plan has nodes to assign to it
SEED = 20260301
LIST_HEAD = b'{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":['
LIST_TAIL = b"]}"


# --------------------------------------------------------------------------- cluster file

def _pairs(policy):
    return [(p, p.gpuModel) for p in policy.pools]


def _node(i: int, pairs, owner: str | None) -> dict:
    """Node `i` exactly as synthetic_nodes() makes it, plus ownership when `owner` is given."""
    pool, model = pairs[i % len(pairs)]
    k = i // len(pairs)
    extra = {KEYS.consortium: owner, KEYS.node_state: "assigned"} if owner else None
    obj = node_object(f"{pool.name}-{k:05d}", pool, model, 8, k, rich=True, extra_labels=extra)
    if owner:
        obj["spec"]["taints"] = [{"key": KEYS.consortium, "value": owner, "effect": "NoSchedule"}]
    return obj


def _namespaces(policy) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {},
             "status": {"phase": "Active"}}
            for c in policy.consortia for ns in c.namespaces]


def check_generator(policy) -> None:
    """The streamed nodes are synthetic_nodes()'s, byte for byte (without ownership)."""
    pairs = _pairs(policy)
    n = 3 * len(pairs) + 2
    want = dumps(synthetic_nodes(n, pairs, rich=True))
    got = LIST_HEAD + b",".join(dumps(_node(i, pairs, None)) for i in range(n)) + LIST_TAIL
    if got != want:
        raise SystemExit("bench_plan: the streamed generator no longer matches synthetic_nodes()")


def write_cluster(path: Path, count: int, policy) -> dict[str, str]:
    """Stream `count` nodes and the namespaces into `path`, one item at a time (the generator
    never holds the whole cluster). Returns {node name: owner} for the owned nodes."""
    pairs = _pairs(policy)
    teams = sorted(c.name for c in policy.consortia if c.name != UNOWNED_TEAM)
    rng = random.Random(SEED)
    owners: dict[str, str] = {}
    with open(path, "wb") as fh:
        fh.write(LIST_HEAD)
        for i in range(count):
            owner = rng.choice(teams) if rng.random() < OWNED_FRACTION else None
            obj = _node(i, pairs, owner)
            if owner:
                owners[obj["metadata"]["name"]] = owner
            if i:
                fh.write(b",")
            fh.write(dumps(obj))
        for ns in _namespaces(policy):
            fh.write(b",")
            fh.write(dumps(ns))
        fh.write(LIST_TAIL)
    return owners


# --------------------------------------------------------------------------- measuring

@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)

    @property
    def s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_s(self) -> float:
        return statistics.median(self.cpu)

    @property
    def mib(self) -> float:
        return statistics.median(self.peak_kib) / 1024


def measure(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """Run `cmd` in a fresh process: its wall time, its CPU time (user + system) and its own
    peak RSS (KiB), the last two from wait4()'s rusage of that child alone."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench_plan: {' '.join(cmd)} exited {proc.returncode}:\n"
                             f"{err.read().decode(errors='replace')[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss  # ru_maxrss: KiB on Linux


def gpu_scheduler() -> list[str]:
    script = Path(sys.executable).parent / "gpu-scheduler"
    if script.exists():
        return [str(script)]
    found = shutil.which("gpu-scheduler")
    return [found] if found else [sys.executable, "-m", "scheduler"]


def commands(path: Path) -> dict[str, list[str]]:
    gs = gpu_scheduler()
    return {
        "json": [sys.executable, "-c", "import json,sys; json.load(open(sys.argv[1],'rb'))", str(path)],
        "plan": gs + ["plan", "--policy", "policies", "--cluster", str(path), "--at", AT, "-o", "json"],
        "simulate": gs + ["simulate", "--policy", "policies", "--cluster", str(path),
                          "--from", SIM_FROM, "--to", SIM_TO, "-o", "json"],
    }


def plan_work(path: Path, owners: dict[str, str], cmd: list[str]) -> str:
    """One untimed plan run (it also warms the byte-code cache): what the plan does."""
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


# --------------------------------------------------------------------------- report

def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()} "
            f"({platform.python_implementation()}); {platform.system()} {platform.release()}")


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000", help="node counts, comma separated")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command per size (median)")
    ap.add_argument("--simulate-max", type=int, default=10000, help="largest size simulate runs on")
    ap.add_argument("--keep", metavar="DIR", help="write the cluster files here and keep them")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    os.chdir(ROOT)
    policy = load_policy("policies")
    check_generator(policy)
    print(f"machine: {machine()}")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"plan:     gpu-scheduler plan --policy policies --cluster FILE --at {AT} -o json >/dev/null")
    print(f"simulate: gpu-scheduler simulate --policy policies --cluster FILE --from {SIM_FROM} --to {SIM_TO} "
          f"-o json >/dev/null   (sizes <= {args.simulate_max})")
    print("floor:    python -c \"import json,sys; json.load(open(sys.argv[1],'rb'))\" FILE")
    print(f"each a fresh process; median of {args.runs} runs; peak = that process's max RSS (wait4)\n",
          flush=True)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in sizes:
            path = tmp / f"cluster-{size}.json"
            t0 = time.perf_counter()
            owners = write_cluster(path, size, policy)
            mib = path.stat().st_size / 2**20
            cmds = commands(path)
            print(f"[{size} nodes] wrote {path.name}: {mib:.1f} MiB in {time.perf_counter() - t0:.1f} s; "
                  f"{plan_work(path, owners, cmds['plan'])}", flush=True)
            wanted = ["json", "plan"] + (["simulate"] if size <= args.simulate_max else [])
            series = {k: Series() for k in wanted}
            for _ in range(args.runs):
                for k in wanted:
                    s, cpu, kib = measure(cmds[k])
                    series[k].seconds.append(s)
                    series[k].cpu.append(cpu)
                    series[k].peak_kib.append(kib)
            for k in wanted:
                print(f"    {k:9s} " + "  ".join(f"{s:.2f}s ({cpu:.2f}s cpu) {kib / 1024:.0f}MiB" for s, cpu, kib
                                                in zip(series[k].seconds, series[k].cpu, series[k].peak_kib)),
                      flush=True)
            rows.append((size, mib, series))
            if not args.keep:
                path.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    head = (f"{'nodes':>7} {'file MiB':>9} {'json.load s':>11} {'peak MiB':>9} {'plan s':>8} {'peak MiB':>9} "
            f"{'time x':>7} {'mem x':>6} {'simulate s':>10} {'peak MiB':>9}")
    print(head)
    print("-" * len(head))
    for size, mib, sr in rows:
        j, p, sim = sr["json"], sr["plan"], sr.get("simulate")
        print(f"{size:>7} {mib:>9.1f} {j.s:>11.3f} {j.mib:>9.0f} {p.s:>8.3f} {p.mib:>9.0f} "
              f"{p.s / j.s:>7.2f} {p.mib / j.mib:>6.2f} {fmt(sim.s if sim else None, '.3f'):>10} "
              f"{fmt(sim.mib if sim else None, '.0f'):>9}")
    print("time x = plan time / json.load time; mem x = plan peak / json.load peak (whole processes)")
    print("\nCPU time (user + system), medians: " + "; ".join(
        f"{size}: json.load {sr['json'].cpu_s:.2f} s, plan {sr['plan'].cpu_s:.2f} s "
        f"(x{sr['plan'].cpu_s / sr['json'].cpu_s:.2f})"
        + (f", simulate {sr['simulate'].cpu_s:.2f} s" if "simulate" in sr else "")
        for size, _, sr in rows))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(other work on the machine inflates wall times; CPU times are less affected)")

    if len(rows) > 1:
        print("\ngrowth between sizes (ratio of medians)")
        for (a, _, sa), (b, _, sb) in zip(rows, rows[1:]):
            parts = [f"{b}/{a} nodes (x{b / a:g}):",
                     f"json.load time x{sb['json'].s / sa['json'].s:.2f} mem x{sb['json'].mib / sa['json'].mib:.2f}",
                     f"plan time x{sb['plan'].s / sa['plan'].s:.2f} mem x{sb['plan'].mib / sa['plan'].mib:.2f}"]
            if "simulate" in sa and "simulate" in sb:
                parts.append(f"simulate time x{sb['simulate'].s / sa['simulate'].s:.2f}")
            print("  " + "  ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
