"""Benchmark: the real daemon (`gpu-scheduler run`, a process of its own) at rest on a large
cluster: its resident memory and CPU once it has reconciled and has nothing left to write, against
a process that only holds `json.load` of the same node list; and where its cold start goes.

    .venv/bin/python tests/benchmarks/bench_daemon_rest.py [--nodes 10000,50000] [--rest 60]
                                                           [--nodes-profile typical|large]

The policy is the real programme as one cluster (tests/realpolicy.py: `policies/` without its
`clusters:` list and its pools' `cluster:`, written into this run's temporary folder as ONE-CLUSTER):
the real programme spans several clusters, and here one daemon drives one API.

Per size:

1. **The API.** The sandbox API server in a process of its own (benchlib.SandboxProcess, as
   bench_reconcile.py runs it), loaded with that many unowned synthetic GPU nodes of the
   `--nodes-profile` size, the consortia's namespaces and `gpu-scheduler` (the Lease's).
2. **The cold start, replayed** (skip with `--no-replay`): before the daemon starts, a separate
   process makes the calls of the daemon's start and first reconcile, each timed alone, without
   writing: connect, the daemon's check that the Lease's namespace exists (its first request),
   each of the four lists (`list_pages`, page by page as the daemon reads them) and its `decode_snapshot`, `plan()` and
   `desired_writes()`. The daemon's own log cannot split its first reconcile this finely.
3. **The daemon**: `gpu-scheduler run --kubeconfig K --policy ONE-CLUSTER --start AT
   --lease-namespace gpu-scheduler --metrics-port 0 -v` (the periodic reconcile at its default
   unless `--reconcile-every`), spawned; its log (stderr) is kept. The script waits until it leads
   (the `gpu_scheduler_leader` gauge on its /metrics) and a reconcile that started after the last
   API write the sandbox answered (Lease renewals aside) has finished: the cold start's writes are
   done and a reconcile found nothing more to write; then until it is quiet (`--quiet` seconds, 5
   by default, in which no reconcile ended and it used under 5% of a CPU: the watches have caught
   up with the cold start's writes and the reconciles they woke are over).
4. **At rest**, for `--rest` seconds (default 60): its resident set (VmRSS of
   /proc/PID/status) every `--sample` seconds, and its CPU (utime + stime of /proc/PID/stat) at
   the start and the end of the window. /metrics is read only before and after the window (a
   scrape costs CPU), for the reconciles that ran meanwhile; the sandbox counts the API requests
   (lists, watches) and writes (must be 0; the leader Lease's renewals counted apart) it got
   meanwhile.
5. **The yardstick**: the node list as the API serves it now (GET /api/v1/nodes, saved to a file)
   loaded with `json.load` in a fresh Python process that then holds it; its VmRSS is read the
   same way. Ratio: the daemon's median resident set at rest / that process's.
6. **The cold start from the log**: spawn, policy loaded, Lease acquired, each reconcile's start
   (`-v`: "reconcile (why)"), the first and last API write (the sandbox time-stamps each), the
   end of the reconcile that wrote ("reconciled at ..."), the watch cache's first lists done
   ("gpu-scheduler running" on stdout), settled.

Targets (the project's): resident memory at rest <= 0.25x the json.load process at 10,000 and
50,000 nodes; CPU at rest <= 0.2 CPU-second a minute at 10,000 nodes. The window sees the
periodic reconciles (every 30 s by default) but not the full re-list of the watch cache's
resync (every 5 minutes) unless `--rest` is longer than that.

Nothing here is a pass/fail test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import ROOT, SandboxProcess, median, verdict  # noqa: E402

from tests.realpolicy import copy_one_cluster, one_cluster_policy  # noqa: E402  (the real programme as one cluster)

AT = "2026-03-01T00:00:00+09:00"   # programme time the daemon starts from: stage 2 in force, no change for months
LEASE_NS = "gpu-scheduler"
RSS_TARGET = 0.25                  # daemon RSS at rest / RSS of a process holding json.load of the nodes
CPU_TARGET = 0.2                   # CPU-seconds a minute at rest, 10,000 nodes
CPU_TARGET_SIZE = 10_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")

# The daemon's first reconcile, step by step, in a process of its own (no writes).
REPLAY = r"""
import time; t0 = time.perf_counter(); c0 = time.process_time()
import gc, json, sys
from scheduler.actuator.connect import connect
from scheduler.actuator.reads import LISTS, list_pages, merged
from scheduler.actuator.writes import desired_writes
from scheduler.cli.commands import _instant
from scheduler.cluster import Keys, Snapshot, decode_snapshot
from scheduler.cluster.decode import paused_gc
from scheduler.daemon.app import require_namespace
from scheduler.planner import plan
from scheduler.policy import load_policy
out = {}
def step(name, fn):
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    out[name] = (time.perf_counter() - t, time.process_time() - c)
    return result
out["imports"] = (time.perf_counter() - t0, time.process_time() - c0)
keys = Keys()
policy = step("load policy", lambda: load_policy(sys.argv[4]))  # the real programme as one cluster
try:  # decode only the node labels planning reads, as `plan` and the daemon do (where the code can)
    from scheduler.planner.nodes import label_keys
    keys = keys.reading(label_keys(policy))
except (ImportError, AttributeError):
    pass
api = step("connect", lambda: connect(sys.argv[1]))
step("namespace check", lambda: require_namespace(api, sys.argv[3]))  # the daemon's first request
parts, sizes = {}, {}
for resource in LISTS:
    pages = step(f"list {resource}", lambda: [data for data, _ in list_pages(api, resource)])
    sizes[resource] = sum(map(len, pages))
    parts[resource] = step(f"decode {resource}", lambda: merged([decode_snapshot(p, keys) for p in pages]))
    del pages
snapshot = Snapshot(nodes=parts["nodes"].nodes, namespaces=parts["namespaces"].namespaces,
                    quotas=parts["resourcequotas"].quotas, pods=parts["pods"].pods)
at = _instant(sys.argv[2], policy)
with paused_gc():
    result = step("plan()", lambda: plan(policy, snapshot, at, keys))
with paused_gc():
    writes = step("desired_writes()", lambda: desired_writes(result, snapshot, policy, keys, None, set()))
print(json.dumps({"steps": out, "bytes": sizes, "writes": len(writes), "nodes": len(snapshot.nodes)}))
"""

# Imports what the daemon and the replay import, so that the byte-code cache is filled before
# anything is timed (as after an ordinary install; module-level imports and the lazy ones).
WARM = r"""
import scheduler.cli.commands, scheduler.daemon.app, scheduler.observability.http
import scheduler.actuator.reads, scheduler.actuator.writes, scheduler.actuator.writer, scheduler.actuator.watch
import scheduler.planner, scheduler.cluster.decode
import kubernetes.client, kubernetes.config, kubernetes.watch
from kubernetes.client.api import core_v1_api, coordination_v1_api
import apscheduler.schedulers.background, apscheduler.triggers.date, apscheduler.triggers.interval
import apscheduler.executors.pool, apscheduler.jobstores.memory
import prometheus_client
"""

# A process that holds json.load of a file until its stdin closes.
HOLDER = r"""
import json, sys
held = json.load(open(sys.argv[1], "rb"))
print(len(held.get("items", ())), flush=True)
sys.stdin.read()
"""


# --------------------------------------------------------------------------- /proc

def proc_status(pid: int) -> dict[str, int]:
    """The kB fields (VmRSS, VmHWM, RssAnon, RssFile...) and Threads of /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
                out[key] = int(parts[0])
    return out


def proc_cpu(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------- the daemon

def gpu_scheduler() -> str:
    script = Path(sys.executable).parent / "gpu-scheduler"
    return str(script) if script.exists() else "gpu-scheduler"


def scrape(port: int) -> dict[str, float]:
    """/metrics as {name{labels}: value} (the samples only)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def metric(m: dict[str, float], name: str, **labels: str) -> float:
    key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return m.get(key, 0.0)


@dataclass
class Daemon:
    proc: subprocess.Popen
    log_path: Path
    spawned_wall: float
    spawned_mono: float
    stdout: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, line)
    port: int | None = None
    verbose: bool = True
    _starts: list[float] = field(default_factory=list)  # each reconcile's start (wall clock), from the log
    _read_to: int = 0
    _partial: bytes = b""

    def reconcile_starts(self) -> list[float]:
        """When each reconcile began, from the `-v` log's "reconcile (why)" lines (read on from
        where the last call stopped). The daemon runs its reconciles one at a time, so the k-th
        start is the k-th reconcile to end."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self._read_to)
            chunk = fh.read()
        self._read_to += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            if b"DEBUG scheduler.daemon.service: reconcile (" in raw:
                found = LOG_LINE.match(raw.decode(errors="replace"))
                if found:
                    self._starts.append(datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
        return self._starts

    def read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.stdout.append((time.monotonic(), line))
            found = re.search(r"metrics on :(\d+)/metrics", line)
            if found:
                self.port = int(found.group(1))

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_daemon(kubeconfig: str, folder: Path, args) -> Daemon:
    cmd = [gpu_scheduler(), "run", "--kubeconfig", kubeconfig, "--policy", policy_dir(), "--start", args.at,
           "--lease-namespace", LEASE_NS, "--metrics-port", "0"]
    if args.reconcile_every:
        cmd += ["--reconcile-every", str(args.reconcile_every)]
    if not args.quiet_log:
        cmd.append("-v")
    log_path = folder / "daemon.log"
    err = open(log_path, "wb")
    wall, mono = time.time(), time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                            env=ENV)
    err.close()
    d = Daemon(proc, log_path, wall, mono, verbose=not args.quiet_log)
    threading.Thread(target=d.read_stdout, name="daemon-stdout", daemon=True).start()
    return d


def wait_quiet(d: Daemon, quiet: float, timeout: float, busy: float = 0.05) -> float:
    """Until, for `quiet` seconds, no reconcile has ended and the daemon used less than `busy` of a
    CPU (no reconcile running, the watches caught up with the cold start's writes). /metrics is
    read only at the ends of each candidate period (a scrape costs the daemon CPU: its plan's
    gauges, ~0.1 s at 50,000 nodes). Returns when the quiet period began (monotonic)."""
    assert d.port is not None
    deadline = time.monotonic() + timeout
    ended = metric(scrape(d.port), "gpu_scheduler_reconcile_duration_seconds_count")
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            raise SystemExit(f"bench_daemon_rest: the daemon exited with {d.proc.returncode}; its log: {d.log_path}")
        t0, c0 = time.monotonic(), proc_cpu(d.proc.pid)
        time.sleep(quiet)
        t1, c1 = time.monotonic(), proc_cpu(d.proc.pid)
        now_ended = metric(scrape(d.port), "gpu_scheduler_reconcile_duration_seconds_count")
        if now_ended == ended and c1 - c0 < busy * (t1 - t0):
            return t0
        ended = now_ended
    raise SystemExit(f"bench_daemon_rest: the daemon did not go quiet within {timeout:.0f} s; its log: {d.log_path}")


def wait_settled(d: Daemon, sandbox: SandboxProcess, timeout: float) -> dict[str, float]:
    """Until the daemon leads and a reconcile that started after the last API write (and after
    leadership was seen) has finished. While writes are still landing only the sandbox is asked
    (/metrics is read once they have paused for a second: a scrape costs the daemon CPU). With
    the `-v` log, each reconcile's start is read there; without it, from /metrics (the duration
    histogram and the last success's time), which can take until the next periodic reconcile.
    Returns when (monotonic) and what it saw."""
    deadline = time.monotonic() + timeout
    offset = time.time() - time.monotonic()  # wall = monotonic + offset (the sandbox's stamps are monotonic)
    leader_seen: float | None = None
    prev: tuple[float, float] | None = None   # (reconciles ended, duration sum) at the previous scrape
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            raise SystemExit(f"bench_daemon_rest: the daemon exited with {d.proc.returncode}; its log: {d.log_path}\n"
                             + d.log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.5)
        _, lw = sandbox.call("last_write")
        if d.port is None or lw is None or time.monotonic() - lw < 1.0:
            continue
        now_wall, now_mono = time.time(), time.monotonic()
        m = scrape(d.port)
        if leader_seen is None and metric(m, "gpu_scheduler_leader") == 1:
            leader_seen = now_mono
        ended = metric(m, "gpu_scheduler_reconcile_duration_seconds_count")
        total = metric(m, "gpu_scheduler_reconcile_duration_seconds_sum")
        if d.verbose:
            _, lw = sandbox.call("last_write")
            starts = d.reconcile_starts()
            after = next((k for k, t in enumerate(starts) if t > lw + offset), None)
            if after is not None and ended >= after + 1:
                return {"settled": now_mono, "last write": lw, "reconciles": ended,
                        "writes": float(sum(sandbox.writes(leases=False).values()))}
        elif prev is not None and ended > prev[0] and leader_seen is not None:
            # the reconciles that ended since the last scrape: the last of them started no earlier
            # than (last success) - (their durations together)
            last_end_wall = metric(m, "gpu_scheduler_last_successful_reconcile_timestamp_seconds")
            started_mono = now_mono - (now_wall - last_end_wall) - (total - prev[1])
            _, lw = sandbox.call("last_write")
            if lw is not None and started_mono > lw and started_mono > leader_seen:
                return {"settled": now_mono, "last write": lw, "reconciles": ended,
                        "writes": float(sum(sandbox.writes(leases=False).values()))}
        prev = (ended, total)
        time.sleep(0.5)
    raise SystemExit(f"bench_daemon_rest: the daemon did not settle within {timeout:.0f} s; its log: {d.log_path}")


# --------------------------------------------------------------------------- measuring

ENV: dict[str, str] | None = None
# The policy the daemon and the replay read: the real programme as one cluster (tests/realpolicy.py),
# written into this run's temporary folder by main().
POLICY_DIR: Path | None = None


def policy_dir() -> str:
    assert POLICY_DIR is not None, "main() writes the one-cluster policy first"
    return str(POLICY_DIR)


@dataclass
class Result:
    size: int
    figures: dict[str, float] = field(default_factory=dict)
    rss_samples: list[int] = field(default_factory=list)     # kB
    status_end: dict[str, int] = field(default_factory=dict)
    replay: dict | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def replay(kubeconfig: str, at: str) -> dict:
    out = subprocess.run([sys.executable, "-c", REPLAY, kubeconfig, at, LEASE_NS, policy_dir()], cwd=ROOT, env=ENV,
                         capture_output=True, timeout=900)
    if out.returncode != 0:
        return {"error": out.stderr.decode(errors="replace").strip().splitlines()[-1:]}
    return json.loads(out.stdout)


def hold_json(path: Path) -> dict[str, float]:
    """A fresh process holding json.load of `path`: its VmRSS (median of a few reads) and VmHWM."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        assert proc.stdout is not None
        t0 = time.perf_counter()
        items = int(proc.stdout.readline() or 0)
        load_s = time.perf_counter() - t0
        samples = []
        for _ in range(5):
            samples.append(proc_status(proc.pid)["VmRSS"])
            time.sleep(0.2)
        st = proc_status(proc.pid)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(60)
    return {"rss": median(samples), "hwm": st.get("VmHWM", 0), "items": items, "load s": load_s}


def log_events(d: Daemon) -> list[tuple[float, str]]:
    """(seconds after spawn, what) for the log lines that mark the cold start. Log times are
    wall-clock milliseconds (asctime); per-write lines are left to the sandbox's stamps."""
    events: list[tuple[float, str]] = []
    try:
        text = d.log_path.read_text(errors="replace")
    except OSError:
        return events
    for line in text.splitlines():
        found = LOG_LINE.match(line)
        if not found:
            continue
        stamp, level, logger, message = found.groups()
        if ": done (" in message or level == "DEBUG" and not message.startswith("reconcile ("):
            continue
        t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - d.spawned_wall
        short = message if len(message) <= 150 else message[:147] + "..."
        events.append((t, f"{short}   [{logger.rsplit('.', 1)[-1]}]"))
    return events


def one_size(size: int, policy, tmp: Path, args) -> Result:
    res = Result(size)
    f = res.figures
    folder = tmp / f"n{size}"
    folder.mkdir()
    data_path = folder / "cluster.json"
    t0 = time.perf_counter()
    data_path.write_bytes(benchlib.cluster_bytes(size, policy, [LEASE_NS]))
    f["file MiB"] = data_path.stat().st_size / 2**20
    f["generate s"] = time.perf_counter() - t0
    sandbox = SandboxProcess(seed=1)
    d: Daemon | None = None
    try:
        loaded, f["load s"], f["load cpu"] = sandbox.call("load", str(data_path), True)
        data_path.unlink()
        kubeconfig = sandbox.call("kubeconfig", str(folder / "kubeconfig"))
        res.notes.append(f"sandbox loaded {loaded} objects in {f['load s']:.1f} s")
        print(f"[{size:,} nodes] sandbox loaded {loaded} objects ({f['file MiB']:.1f} MiB) in {f['load s']:.1f} s",
              flush=True)

        if not args.no_replay:
            res.replay = replay(kubeconfig, args.at)
            print(f"[{size:,} nodes] cold start replayed step by step", flush=True)

        sandbox.call("clear_write_times")
        w0 = sum(sandbox.writes(leases=False).values())
        d = start_daemon(kubeconfig, folder, args)
        settled = wait_settled(d, sandbox, args.timeout)
        assert d.port is not None
        f["cold writes"] = settled["writes"] - w0
        f["settle s"] = settled["settled"] - d.spawned_mono
        f["last write s"] = settled["last write"] - d.spawned_mono
        times = sandbox.call("write_times")
        if times:
            f["first write s"] = min(times) - d.spawned_mono
        f["quiet s"] = wait_quiet(d, args.quiet, args.timeout) - d.spawned_mono
        print(f"[{size:,} nodes] daemon settled {f['settle s']:.1f} s after its start ({f['cold writes']:.0f} writes), "
              f"quiet from {f['quiet s']:.1f} s; at rest for {args.rest:g} s", flush=True)

        # at rest
        m0 = scrape(d.port)
        q0, w0, l0 = sandbox.requests(), sum(sandbox.writes(leases=False).values()), sandbox.writes()
        s0 = sandbox.call("cpu")
        c0, t0 = proc_cpu(d.proc.pid), time.monotonic()
        end = t0 + args.rest
        while True:
            res.rss_samples.append(proc_status(d.proc.pid)["VmRSS"])
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(args.sample, left))
        c1, t1 = proc_cpu(d.proc.pid), time.monotonic()
        res.status_end = proc_status(d.proc.pid)
        s1 = sandbox.call("cpu")
        m1 = scrape(d.port)
        q1, w1, l1 = sandbox.requests(), sum(sandbox.writes(leases=False).values()), sandbox.writes()
        f["rest s"] = t1 - t0
        f["rest from s"] = t0 - d.spawned_mono
        f["cpu s"] = c1 - c0
        f["cpu per min"] = (c1 - c0) * 60 / (t1 - t0)
        f["sandbox cpu per min"] = (s1 - s0) * 60 / (t1 - t0)
        f["rss MiB"] = median(res.rss_samples) / 1024
        f["rest reconciles"] = (metric(m1, "gpu_scheduler_reconcile_duration_seconds_count")
                                - metric(m0, "gpu_scheduler_reconcile_duration_seconds_count"))
        dsum = (metric(m1, "gpu_scheduler_reconcile_duration_seconds_sum")
                - metric(m0, "gpu_scheduler_reconcile_duration_seconds_sum"))
        f["rest reconcile s"] = dsum / f["rest reconciles"] if f["rest reconciles"] else 0.0
        f["rest writes"] = w1 - w0
        f["rest lease writes"] = sum(n for (verb, resource), n in (l1 - l0).items() if resource == "leases")
        reqs = q1 - q0
        res.notes.append("API requests at rest: " + (", ".join(
            f"{verb} {resource} {n}" for (verb, resource), n in sorted(reqs.items())) or "none"))

        # the yardstick: json.load of the node list as served now
        nodes_path = folder / "nodes.json"
        with urllib.request.urlopen(f"{sandbox.url}/api/v1/nodes", timeout=600) as resp, open(nodes_path, "wb") as fh:
            while chunk := resp.read(1 << 20):
                fh.write(chunk)
        f["nodes MiB"] = nodes_path.stat().st_size / 2**20
        held = hold_json(nodes_path)
        nodes_path.unlink()
        f["json rss MiB"] = held["rss"] / 1024
        f["json hwm MiB"] = held["hwm"] / 1024
        f["json items"] = held["items"]
        f["rss x"] = f["rss MiB"] / f["json rss MiB"]

        rc = d.stop()
        res.timeline = log_events(d)
        running = next((t for t, line in d.stdout if "gpu-scheduler running" in line), None)
        if running is not None:
            res.timeline.append((running - d.spawned_mono, "'gpu-scheduler running' on stdout: the watch cache's "
                                                           "first lists are done   [stdout]"))
        for key, what in (("first write s", "first API write answered   [sandbox]"),
                          ("last write s", "last API write answered   [sandbox]"),
                          ("settle s", "a reconcile started after the last write has ended: settled   [/metrics]"),
                          ("quiet s", f"quiet from here: {args.quiet:g} s without a reconcile ending and under 5% of "
                                      f"a CPU   [/metrics, /proc]")):
            if key in f:
                res.timeline.append((f[key], what))
        res.timeline.sort()
        if rc not in (0, None):
            res.notes.append(f"the daemon exited with {rc} on SIGTERM")
        if args.keep_logs:
            res.notes.append(f"daemon log: {d.log_path}")
    finally:
        if d is not None:
            d.stop()
        sandbox.stop()
    return res


# --------------------------------------------------------------------------- report

def show(res: Result, args) -> None:
    f = res.figures
    st = res.status_end
    print(f"\n=== {res.size:,} nodes ({benchlib.profile()} profile) ===")
    print(f"cluster JSON {f['file MiB']:.1f} MiB; sandbox load {f['load s']:.1f} s")
    print(f"daemon at rest, {f['rest s']:.0f} s from {f['rest from s']:.1f} s after its start:")
    rss = [k / 1024 for k in res.rss_samples]
    print(f"  resident memory (VmRSS): median {f['rss MiB']:.0f} MiB (min {min(rss):.0f}, max {max(rss):.0f}, "
          f"{len(rss)} samples); at the end RssAnon {st.get('RssAnon', 0) / 1024:.0f} MiB, RssFile "
          f"{st.get('RssFile', 0) / 1024:.0f} MiB; peak since start (VmHWM) {st.get('VmHWM', 0) / 1024:.0f} MiB; "
          f"{st.get('Threads', 0)} threads")
    print(f"  CPU: {f['cpu s']:.2f} s in {f['rest s']:.0f} s = {f['cpu per min']:.2f} CPU-seconds a minute "
          f"({f['rest reconciles']:.0f} reconciles meanwhile, {f['rest reconcile s']:.2f} s each on average); "
          f"the sandbox meanwhile {f['sandbox cpu per min']:.2f} CPU-s/min")
    print(f"  API writes at rest: {f['rest writes']:.0f} (must be 0), besides {f['rest lease writes']:.0f} renewals "
          f"of the leader Lease")
    print(f"the yardstick: a process holding json.load of the node list as served ({f['nodes MiB']:.1f} MiB, "
          f"{f['json items']:.0f} nodes): VmRSS {f['json rss MiB']:.0f} MiB (peak {f['json hwm MiB']:.0f} MiB)")
    print(f"  daemon / json.load process, resident memory: {f['rss x']:.2f}x")
    print(f"  {verdict(f['rss x'] <= RSS_TARGET)}  daemon resident memory at rest: {f['rss x']:.2f}x json.load "
          f"(target <= {RSS_TARGET}x)")
    if res.size == CPU_TARGET_SIZE:
        print(f"  {verdict(f['cpu per min'] <= CPU_TARGET)}  daemon CPU at rest: {f['cpu per min']:.2f} CPU-s a minute "
              f"(target <= {CPU_TARGET})")
    print(f"cold start: {f['cold writes']:.0f} API writes; settled {f['settle s']:.1f} s after the spawn, quiet from "
          f"{f['quiet s']:.1f} s. "
          f"Timeline (seconds after the spawn; from the daemon's log, its stdout, the sandbox's write stamps):")
    for t, what in res.timeline:
        print(f"  {t:8.2f}  {what}")
    if res.replay:
        show_replay(res.replay)
    for note in res.notes:
        print(f"  - {note}")


def show_replay(r: dict) -> None:
    if "error" in r:
        print(f"cold start replayed: failed ({' '.join(r['error'])})")
        return
    steps = r["steps"]
    total = sum(v[0] for k, v in steps.items() if k not in ("imports", "load policy", "connect", "namespace check"))
    print(f"cold start replayed step by step in a process of its own, no writes ({r['nodes']:,} nodes; "
          f"wall s / CPU s):")
    print("  " + "; ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in steps.items()))
    print(f"  the first reconcile before its writes (lists + decodes + plan() + desired_writes()): {total:.2f} s, "
          f"then {r['writes']:,} writes "
          f"to send; bytes listed: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in r["bytes"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="10000", help="cluster sizes, comma separated (default 10000; 0 gives the "
                                                     "daemon's fixed memory)")
    ap.add_argument("--rest", type=float, default=60.0, help="seconds at rest to measure (default 60)")
    ap.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples (default 1)")
    ap.add_argument("--at", default=AT, help=f"programme time the daemon starts from (default {AT})")
    ap.add_argument("--reconcile-every", type=float, default=None,
                    help="the daemon's --reconcile-every (default: the daemon's own default)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the daemon to settle")
    ap.add_argument("--quiet", type=float, default=5.0,
                    help="seconds without a reconcile ending and under 5%% of a CPU before the window starts "
                         "(default 5: past the watch's 2 s debounce)")
    ap.add_argument("--no-replay", action="store_true", help="skip the step-by-step replay of the cold start")
    ap.add_argument("--quiet-log", action="store_true",
                    help="run the daemon without -v (the timeline then lacks each reconcile's start)")
    ap.add_argument("--keep-logs", metavar="DIR", help="keep the daemon's logs in DIR")
    benchlib.add_profile_argument(ap)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.nodes.split(",") if s.strip()]

    os.chdir(ROOT)
    benchlib.use_profile(args.nodes_profile)
    policy = one_cluster_policy()  # the real programme as one cluster (tests/realpolicy.py)
    benchlib.check_generator(policy)
    benchlib.header("bench_daemon_rest: the daemon (`gpu-scheduler run`, its own process) at rest against the "
                    "sandbox API (its own process)")
    print(f"nodes: {benchlib.node_shape(policy)}")
    every = f"--reconcile-every {args.reconcile_every:g}" if args.reconcile_every else "the default periodic reconcile"
    print(f"daemon: gpu-scheduler run --kubeconfig K --policy ONE-CLUSTER --start {args.at} "
          f"--lease-namespace {LEASE_NS} --metrics-port 0{'' if args.quiet_log else ' -v'} ({every}); "
          f"at rest for {args.rest:g} s, RSS every {args.sample:g} s", flush=True)
    print("ONE-CLUSTER: the real programme as one cluster (tests/realpolicy.py: policies/ without its clusters "
          "list and its pools' cluster), written into this run's temporary folder", flush=True)

    tmp = Path(args.keep_logs) if args.keep_logs else Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-rest-"))
    tmp.mkdir(parents=True, exist_ok=True)
    global ENV, POLICY_DIR
    ENV = benchlib.child_env(tmp / "pycache")
    POLICY_DIR = copy_one_cluster(tmp / "policies")
    subprocess.run([sys.executable, "-c", WARM], cwd=ROOT, env=ENV, check=True)
    started = time.monotonic()
    results = []
    try:
        for size in sizes:
            results.append(one_size(size, policy, tmp, args))
            show(results[-1], args)
    finally:
        if not args.keep_logs:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    if len(results) > 1:
        print("\nsummary: nodes, daemon RSS at rest MiB, json.load process MiB, ratio, CPU-s a minute at rest")
        for r in results:
            f = r.figures
            print(f"  {r.size:>7,} {f['rss MiB']:>8.0f} {f['json rss MiB']:>8.0f} {f['rss x']:>6.2f} "
                  f"{f['cpu per min']:>6.2f}")
    print(f"\nload average at the end: {benchlib.load_average()}; bench_daemon_rest took "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
