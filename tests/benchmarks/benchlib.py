"""What the benchmark scripts share: the synthetic cluster file and its node-size profiles, the
machine description, medians and growth exponents, PASS/MISS verdicts, and cProfile helpers (per
thread too).

Node-size profiles (`--nodes-profile` in every script):

- **typical** (the default): a GPU node of about 5.7 KB as `json.dumps(node)` writes it, what
  `kubectl get nodes -o json` shows on a GPU Operator cluster: the GPU Feature Discovery labels, 4
  conditions, 13 images (the node's own: pause, kube-proxy, CNI, exporter, the GPU Operator's
  driver, toolkit, device plugin, GFD, DCGM exporter, validator, MIG manager; two workload
  images), the `nvidia.com/gpu=present:NoSchedule` taint, addresses, nodeInfo. It is
  `node_object(rich=True)` with its image list cut to those 13 and the taint added.
- **large**: `node_object(rich=True)` unchanged (30 images, no taint of its own): about 8.1 KiB.

Not a test module (pytest collects `test_*.py` only) and not part of the package: the scripts in
this folder import it as a sibling (`python tests/benchmarks/bench_*.py` puts this folder first on
sys.path).
"""

from __future__ import annotations

import cProfile
import io
import math
import os
import platform
import pstats
import random
import statistics
import sys
import threading
import time
import multiprocessing
from pathlib import Path
from collections import Counter
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.keys import KEYS  # noqa: E402
from scheduler.cluster.synthetic import dumps, node_object, synthetic_nodes  # noqa: E402

LIST_HEAD = b'{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":['
LIST_TAIL = b"]}"
OWNED_FRACTION = 0.6
UNOWNED_TEAM = "motif"   # owns nothing in bench_plan's file, so its plan has nodes to assign
SEED = 20260301


# --------------------------------------------------------------------------- node-size profiles

PROFILES = ("typical", "large")
DEFAULT_PROFILE = "typical"
# the images a typical GPU node lists (kubelet reports each image with its digest and tag names)
TYPICAL_IMAGES = frozenset({
    "pause", "k8s/kube-proxy", "calico/node", "node-exporter",                        # the node's own
    "driver", "container-toolkit", "k8s-device-plugin", "gpu-feature-discovery",       # GPU Operator
    "k8s/dcgm-exporter", "validator", "cloud-native/k8s-mig-manager",
    "pytorch", "nemo",                                                                  # workloads
})
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
_profile = DEFAULT_PROFILE


def use_profile(name: str) -> None:
    """Make `name` the node-size profile every generator below uses from now on."""
    global _profile
    if name not in PROFILES:
        raise ValueError(f"unknown node profile {name!r} (one of {', '.join(PROFILES)})")
    _profile = name


def profile() -> str:
    return _profile


def add_profile_argument(ap, *, both: bool = False) -> None:
    """`--nodes-profile typical|large` (and `both` where a script can report the two)."""
    choices = PROFILES + (("both",) if both else ())
    ap.add_argument("--nodes-profile", choices=choices, default=DEFAULT_PROFILE,
                    help="node size: typical (about 5.7 KB a node as json.dumps writes it: 13 images, a taint; "
                         "the default) or large (8.1 KiB: 30 images)" + ("; both: each in turn" if both else ""))


def shaped(obj: dict, name: str | None = None) -> dict:
    """A node of node_object(rich=True), cut to the profile (in place; returned)."""
    if (name or _profile) == "typical":
        status, spec = obj["status"], obj["spec"]
        status["images"] = [im for im in status.get("images", ())
                            if im["names"][-1].removeprefix("nvcr.io/nvidia/").rsplit(":", 1)[0] in TYPICAL_IMAGES]
        spec["taints"] = [dict(GPU_TAINT)] + list(spec.get("taints") or ())
    return obj


# --------------------------------------------------------------------------- the cluster

def pairs(policy) -> list:
    return [(p, p.gpuModel) for p in policy.pools]


def node_json(i: int, pool_pairs, owner: str | None = None) -> dict:
    """Node `i` as synthetic_nodes() makes it, cut to the node-size profile, plus ownership
    (label, state, taint)."""
    pool, model = pool_pairs[i % len(pool_pairs)]
    k = i // len(pool_pairs)
    extra = {KEYS.consortium: owner, KEYS.node_state: "assigned"} if owner else None
    obj = shaped(node_object(f"{pool.name}-{k:05d}", pool, model, 8, k, rich=True, extra_labels=extra))
    if owner:
        obj["spec"]["taints"] = [t for t in obj["spec"].get("taints") or () if t["key"] != KEYS.consortium] \
            + [{"key": KEYS.consortium, "value": owner, "effect": "NoSchedule"}]
    return obj


def namespaces(policy, extra: Iterable[str] = ()) -> list[dict]:
    names = [ns for c in policy.consortia for ns in c.namespaces] + list(extra)
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {},
             "status": {"phase": "Active"}}
            for ns in names]


def check_generator(policy) -> None:
    """The streamed nodes are synthetic_nodes()'s cut to the profile, byte for byte (without
    ownership); with the large profile, synthetic_nodes()'s exactly."""
    pp = pairs(policy)
    n = 3 * len(pp) + 2
    nodes = synthetic_nodes(n, pp, rich=True)
    nodes["items"] = [shaped(item) for item in nodes["items"]]
    want = dumps(nodes)
    got = LIST_HEAD + b",".join(dumps(node_json(i, pp)) for i in range(n)) + LIST_TAIL
    if got != want:
        raise SystemExit("benchmarks: the streamed generator no longer matches synthetic_nodes()")


def owners_for(count: int, policy, fraction: float = OWNED_FRACTION, seed: int = SEED,
               skip: str | None = UNOWNED_TEAM) -> list[str | None]:
    """Seeded: which team (or nobody) holds node i."""
    teams = sorted(c.name for c in policy.consortia if c.name != skip)
    rng = random.Random(seed)
    return [rng.choice(teams) if rng.random() < fraction else None for _ in range(count)]


def write_cluster(path: Path, count: int, policy, owned_fraction: float = OWNED_FRACTION) -> dict[str, str]:
    """Stream `count` nodes and the namespaces into `path` as a v1 List, one item at a time (the
    cluster is never held in memory). Returns {node name: owner} for the owned nodes."""
    pp = pairs(policy)
    owners: dict[str, str] = {}
    # same draw order as the original bench_plan (one random() then maybe one choice() per node)
    who = owners_for(count, policy, owned_fraction)
    with open(path, "wb") as fh:
        fh.write(LIST_HEAD)
        for i in range(count):
            obj = node_json(i, pp, who[i])
            if who[i]:
                owners[obj["metadata"]["name"]] = who[i]  # type: ignore[index]
            if i:
                fh.write(b",")
            fh.write(dumps(obj))
        for j, ns in enumerate(namespaces(policy)):
            if count or j:
                fh.write(b",")
            fh.write(dumps(ns))
        fh.write(LIST_TAIL)
    return owners


def cluster_bytes(count: int, policy, extra_namespaces: Iterable[str] = ()) -> bytes:
    """`count` unowned nodes and the namespaces, as one v1 List in memory (for the sandbox)."""
    pp = pairs(policy)
    items = [dumps(node_json(i, pp)) for i in range(count)]
    items += [dumps(ns) for ns in namespaces(policy, extra_namespaces)]
    return LIST_HEAD + b",".join(items) + LIST_TAIL


def node_sizes(policy, sample: int = 60) -> dict[str, float]:
    """Mean bytes of a node of the profile: as json.dumps(node) writes it (the size quoted for
    `kubectl get nodes -o json`), compact (as the benchmark files and the sandbox hold it) and with
    kubectl's 4-space indent; unowned and owned (label, state, consortium taint)."""
    import json

    pp = pairs(policy)
    free = [node_json(i, pp) for i in range(sample)]
    owned = [node_json(i, pp, "lg") for i in range(sample)]
    return {
        "json.dumps": statistics.mean(len(json.dumps(o)) for o in free),
        "json.dumps owned": statistics.mean(len(json.dumps(o)) for o in owned),
        "compact": statistics.mean(len(dumps(o)) for o in free),
        "compact owned": statistics.mean(len(dumps(o)) for o in owned),
        "indent=4": statistics.mean(len(json.dumps(o, indent=4)) for o in free),
    }


def node_shape(policy, sample: int = 50) -> str:
    """What a synthetic node of the profile looks like: size, labels (GPU Feature Discovery
    ones), the rest."""
    pp = pairs(policy)
    objs = [node_json(i, pp) for i in range(sample)]
    sizes = node_sizes(policy, sample)
    labels = [o["metadata"]["labels"] for o in objs]
    n_labels = statistics.mean(len(x) for x in labels)
    gfd = statistics.mean(sum(1 for k in x if k.startswith(("nvidia.com/", "feature.node.kubernetes.io/")))
                          for x in labels)
    st, spec = objs[0]["status"], objs[0]["spec"]
    taints = ", ".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in spec.get("taints") or ()) or "none"
    return (f"profile {_profile}: {sizes['json.dumps']:,.0f} bytes a node as json.dumps(node) writes it "
            f"({sizes['json.dumps owned']:,.0f} owned); {sizes['compact'] / 1024:.1f} KiB compact as in the files "
            f"({sizes['compact owned'] / 1024:.1f} owned), {sizes['indent=4'] / 1024:.1f} KiB with kubectl's indent; "
            f"{n_labels:.0f} labels ({gfd:.0f} from GPU Feature Discovery / NFD: nvidia.com/gpu.product, "
            f"gpu.memory, cuda.driver.major, feature.node.kubernetes.io/...), "
            f"{len(objs[0]['metadata']['annotations'])} annotations, {len(st['conditions'])} conditions, "
            f"{len(st.get('images', ()))} images, taints: {taints} (+ the consortium's on owned nodes), "
            f"addresses, nodeInfo, capacity/allocatable")


# --------------------------------------------------------------------------- the machine

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
    return (f"{cpu}, nproc {os.cpu_count()}{mem}; Python {platform.python_version()} "
            f"({platform.python_implementation()}); {platform.system()} {platform.release()}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# Runs argv[2:] as its child and writes that child's wall time, CPU time and peak RSS to argv[1].
# Why a go-between: Linux carries a process's high-water RSS across fork() and exec() into the
# child's ru_maxrss, so a command spawned straight from a benchmark script would never show a peak
# below the script's own (tens of MiB, more after the script has built a big cluster). This small
# process (started with -S: no site-packages) is what the measured command is forked from.
_SPAWNER = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_measured(cmd: list[str], *, stdout: Any = None, stderr: Any = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[float, float, int, int]:
    """Run `cmd` in a fresh process: (wall seconds, CPU seconds (user + system), peak RSS in KiB,
    exit code), the last three from wait4()'s rusage of that process alone. The wall time is
    taken around its spawn and reaping by the go-between, so the go-between's own start-up is not
    in it."""
    import json
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        subprocess.run([sys.executable, "-S", "-c", _SPAWNER, result.name, *cmd], stdin=subprocess.DEVNULL,
                       stdout=stdout, stderr=stderr, cwd=cwd, env=env, check=True)
        got = json.load(result)
    return got["wall"], got["cpu"], got["maxrss_kib"], got["rc"]


def child_env(pycache: Path) -> dict[str, str]:
    """The environment of timed child processes: byte-code cached (in `pycache`, outside the
    repository), as after an ordinary install. Without it, an environment that sets
    PYTHONDONTWRITEBYTECODE makes every run recompile the package (~0.13 s on 2 cores)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def header(what: str, profiles: Iterable[str] | None = None) -> None:
    names = ", ".join(profiles) if profiles is not None else _profile
    print(f"{what}\nnodes profile: {names}\nmachine: {machine()}\nload average at the start: {load_average()} "
          f"(other work on the machine inflates wall times; CPU times are less affected)", flush=True)


# --------------------------------------------------------------------------- figures

def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def exponent(n_a: float, t_a: float, n_b: float, t_b: float) -> float | None:
    """k in t ~ n^k between two sizes: 1 is linear, 2 quadratic."""
    if t_a <= 0 or t_b <= 0 or n_a <= 0 or n_b <= 0 or n_a == n_b:
        return None
    return math.log(t_b / t_a) / math.log(n_b / n_a)


def fmt_exp(k: float | None) -> str:
    return "-" if k is None else f"n^{k:.2f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --------------------------------------------------------------------------- profiles

def print_top(stats: pstats.Stats | cProfile.Profile, top: int = 25, title: str = "",
              sort: str = "cumulative") -> None:
    """The top entries of a profile, sorted by cumulative time, with shortened paths."""
    out = io.StringIO()
    s = stats if isinstance(stats, pstats.Stats) else pstats.Stats(stats, stream=out)
    s.stream = out  # type: ignore[attr-defined]
    s.sort_stats(sort).print_stats(top)
    text = _short(out.getvalue())
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(
        ("Ordered by", "List reduced", "Stats", "/", "Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "))]
    if title:
        by = {"cumulative": "cumulative", "tottime": "own", "time": "own"}.get(sort, sort)
        print(f"\n--- profile: {title} (top {top} by {by} time) ---")
    print("\n".join(lines), flush=True)


def _short(text: str) -> str:
    """Paths relative to the repository, site-packages and the standard library."""
    for prefix in (str(ROOT) + "/", sys.prefix + f"/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/",
                   sys.base_prefix + f"/lib/python{sys.version_info.major}.{sys.version_info.minor}/"):
        text = text.replace(prefix, "")
    return text


def func_label(func: tuple[str, int, str]) -> str:
    path, line, name = func
    path = _short(path)
    return f"{path}:{line}({name})" if line else name


def own_times(stats: pstats.Stats) -> dict[str, tuple[float, float, int]]:
    """{function: (own time, cumulative time, calls)}."""
    return {func_label(f): (tt, ct, nc) for f, (cc, nc, tt, ct, callers) in stats.stats.items()}  # type: ignore[attr-defined]


class ThreadProfiles:
    """cProfile for code that runs on other threads (the sandbox's request handlers): wrap the
    entry point; each thread gets its own profiler, enabled only inside the call. `stats()`
    merges them. Overhead only while enabled."""

    def __init__(self, timer: Callable[[], float] | None = None) -> None:
        self.enabled = False
        self.timer = timer
        self._local = threading.local()
        self._all: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kwargs)
            prof = getattr(self._local, "prof", None)
            if prof is None:
                prof = self._local.prof = cProfile.Profile(self.timer) if self.timer else cProfile.Profile()
                with self._lock:
                    self._all.append(prof)
            prof.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                prof.disable()
        return wrapped

    def reset(self) -> None:
        with self._lock:
            self._all = []
        self._local = threading.local()

    def stats(self) -> pstats.Stats | None:
        with self._lock:
            profs = [p for p in self._all if p.getstats()]
        if not profs:
            return None
        s = pstats.Stats(profs[0], stream=io.StringIO())
        for p in profs[1:]:
            s.add(p)
        return s


# --------------------------------------------------------------------------- the sandbox, in its own process

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _managed_state(server, prefix: str, skip: tuple[str, ...]) -> dict[str, dict[Any, Any]]:
    """What the scheduler manages on every object (labels, annotations and taints under its
    prefix; quotas; Events), read from the store: no HTTP, not counted."""
    def ours(d):
        return {k: v for k, v in (d or {}).items() if k.startswith(prefix) and k not in skip}
    out: dict[str, dict[Any, Any]] = {"nodes": {}, "namespaces": {}, "resourcequotas": {}, "events": {}}
    for n in server.list("nodes"):
        m = n["metadata"]
        out["nodes"][m["name"]] = (ours(m.get("labels")), ours(m.get("annotations")),
                                   sorted((t["key"], t.get("value", ""), t["effect"])
                                          for t in (n.get("spec") or {}).get("taints") or [] if t["key"].startswith(prefix)))
    for ns in server.list("namespaces"):
        m = ns["metadata"]
        out["namespaces"][m["name"]] = (ours(m.get("labels")), ours(m.get("annotations")))
    for q in server.list("resourcequotas"):
        out["resourcequotas"][(q["metadata"]["namespace"], q["metadata"]["name"])] = q.get("spec", {}).get("hard")
    for e in server.list("events"):
        out["events"][(e["metadata"]["namespace"], e["metadata"]["name"])] = e.get("reason")
    return out


def _sandbox_child(conn, seed: int) -> None:
    """The sandbox API server in a process of its own, driven over a pipe. Its write requests
    are time-stamped (time.monotonic, comparable across processes on Linux) as they are answered,
    except those to Leases (a leader election's renewals, every few seconds: not the scheduler's
    writes to the cluster)."""
    import gc

    from scheduler.sandbox import SandboxServer
    from scheduler.sandbox.api import Api

    profiles = ThreadProfiles()
    write_times: list[float] = []
    handle = profiles.wrap(Api.handle)

    def recorded(api_self, req):
        resp = handle(api_self, req)
        if req.method in WRITE_METHODS and resp.status < 400 and "/leases" not in req.path:
            write_times.append(time.monotonic())
        return resp
    Api.handle = recorded  # type: ignore[method-assign]
    server = SandboxServer(port=0, seed=seed).start()
    conn.send(server.url)
    while True:
        cmd, *args = conn.recv()
        try:
            if cmd == "load":
                path, freeze = args
                data = Path(path).read_bytes()
                t0, c0 = time.perf_counter(), time.process_time()
                n = server.load_list(data)
                result: Any = (n, time.perf_counter() - t0, time.process_time() - c0)
                del data
                if freeze:  # keep the loaded cluster out of later cyclic collections
                    gc.collect()
                    gc.freeze()
            elif cmd == "load_list":
                result = server.load_list(args[0])
            elif cmd == "kubeconfig":
                result = str(server.write_kubeconfig(args[0]))
            elif cmd == "counters":
                result = (dict(server.writes), dict(server.requests))
            elif cmd == "write_times":
                result = list(write_times)
            elif cmd == "last_write":  # (how many, the last one's stamp or None): cheap to poll
                result = (len(write_times), write_times[-1] if write_times else None)
            elif cmd == "clear_write_times":
                write_times.clear()
                result = None
            elif cmd == "cpu":
                result = time.process_time()
            elif cmd == "managed":
                result = _managed_state(server, *args)
            elif cmd == "get":
                result = server.get(*args)
            elif cmd == "profile":
                profiles.enabled = bool(args[0])
                result = None
            elif cmd == "profile_dump":
                stats = profiles.stats()
                profiles.reset()
                if stats is not None:
                    stats.dump_stats(args[0])
                result = args[0] if stats is not None else None
            elif cmd == "stop":
                server.stop()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class SandboxProcess:
    """A `SandboxServer` in a child process (spawned), so that the API server's work does not
    share the GIL, the heap or the garbage collector with the code under test, as in production."""

    def __init__(self, seed: int = 1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sandbox_child, args=(child, seed), name="sandbox-apiserver", daemon=True)
        self.proc.start()
        self.url = self.conn.recv()

    def call(self, cmd: str, *args: Any) -> Any:
        self.conn.send((cmd, *args))
        status, result = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox process: {cmd}: {result}")
        return result

    def writes(self, leases: bool = True) -> Counter:
        """API writes answered so far, by (verb, resource); `leases=False` leaves out the Lease's."""
        return Counter({k: n for k, n in self.call("counters")[0].items()
                        if k[0] in ("create", "update", "patch", "delete", "deletecollection")
                        and (leases or k[1] != "leases")})

    def requests(self) -> Counter:
        return Counter(self.call("counters")[1])

    def managed(self, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, dict[Any, Any]]:
        return self.call("managed", prefix, skip)

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.call("stop")
            except (EOFError, OSError, RuntimeError):
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        self.conn.close()
