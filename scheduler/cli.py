"""The `gpu-scheduler` command: validate, plan, simulate, schema."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from datetime import datetime, timedelta
from typing import Sequence

from scheduler import DOMAIN, __version__
from scheduler.policy import PolicyError, load_policy
from scheduler.policy.types import parse_duration, parse_instant

DEFAULT_POLICY = "policies"


def _prefix(text: str) -> str:
    """A label-key prefix is a DNS subdomain (Kubernetes rejects anything else in a key)."""
    import re

    if len(text) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS subdomain (like example.com)")
    return text


def _instant(text: str, policy) -> datetime:
    class _Info:
        context = {"timezone": policy.timezone}
    return parse_instant(text, _Info())  # type: ignore[arg-type]


def _now(policy) -> datetime:
    return datetime.now(policy.timezone)


def _keys(args):
    """The label/annotation/taint keys under the configured prefix (DESIGN section 5)."""
    from scheduler.cluster import Keys

    return Keys(args.label_prefix)


def _output(args) -> str:
    if args.output:
        return args.output
    return "table" if sys.stdout.isatty() else "json"


def _load(args):
    try:
        return load_policy(args.policy)
    except PolicyError as err:
        print(str(err), file=sys.stderr)
        print(f"policy invalid: {len(err.issues)} problem(s)", file=sys.stderr)
        return None


def _snapshot(args, policy):
    """The cluster to plan on: a file, a live cluster, or (neither given) one sized from the policy."""
    from scheduler.cluster import decode_snapshot
    from scheduler.cluster.synthetic import builtin_cluster, dumps

    live = getattr(args, "kubeconfig", None) or getattr(args, "in_cluster", False)
    if args.cluster == "builtin" or not (args.cluster or live):
        return decode_snapshot(dumps(builtin_cluster(policy)), _keys(args))
    return _read_cluster(args)


def _read_cluster(args):
    """A `kubectl get ... -o json` file (or '-' for stdin), else the live cluster; None after
    saying why on stderr."""
    from scheduler.cluster import SnapshotError, decode_snapshot, decode_snapshot_file

    if args.cluster:
        try:
            keys = _keys(args)
            return (decode_snapshot(sys.stdin.buffer.read(), keys) if args.cluster == "-"
                    else decode_snapshot_file(args.cluster, keys))
        except (OSError, SnapshotError) as err:
            print(f"{args.cluster}: {err}", file=sys.stderr)
            return None
    from scheduler.cluster.kube import connect, read_snapshot

    try:
        snapshot, _ = read_snapshot(connect(args.kubeconfig, args.in_cluster), _keys(args))
    except Exception as err:  # connection or credentials: say so, no traceback
        print(f"cannot read the cluster: {err}", file=sys.stderr)
        return None
    return snapshot


def cmd_validate(args) -> int:
    policy = _load(args)
    if policy is None:
        return 1
    print(f"{args.policy}: valid ({len(policy.files)} file(s), {len(policy.stages)} stage(s), "
          f"{len(policy.consortia)} consortia, {len(policy.pools)} pools; sha256 {policy.sha256[:12]})")
    return 0


def cmd_plan(args) -> int:
    from scheduler.planner import plan
    from scheduler.render import plan_json, plan_table

    policy = _load(args)
    if policy is None:
        return 1
    snapshot = _snapshot(args, policy)
    if snapshot is None:
        return 2
    at = _instant(args.at, policy) if args.at else _now(policy)
    result = plan(policy, snapshot, at, _keys(args))
    print(plan_table(result) if _output(args) == "table" else plan_json(result))
    return 0


def cmd_simulate(args) -> int:
    from scheduler.planner.simulate import simulate
    from scheduler.render import timeline_json, timeline_table

    policy = _load(args)
    if policy is None:
        return 1
    snapshot = _snapshot(args, policy)
    if snapshot is None:
        return 2
    start = _instant(args.from_, policy) if args.from_ else (policy.stages[0].spec.start - timedelta(days=1)
                                                             if policy.stages else _now(policy))
    end = _instant(args.to, policy) if args.to else start + timedelta(days=365)
    if end < start:
        print("--to is before --from", file=sys.stderr)
        return 2
    step = parse_duration(args.step) if args.step else None
    steps = simulate(policy, snapshot, start, end, step)
    print(timeline_table(steps) if _output(args) == "table" else timeline_json(steps))
    return 0


def cmd_status(args) -> int:
    """What a consortium engineer wants: quota, allocation, status, next change, from the labels
    and the allocation annotation the scheduler wrote on the namespaces."""
    from scheduler.render import status_table

    snapshot = _read_cluster(args)
    if snapshot is None:
        return 2
    rows = status_rows(snapshot, args.consortium, _keys(args))
    if _output(args) == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(status_table(rows) if rows else "no namespace carries gpu-scheduler labels yet")
    return 0


def status_rows(snapshot, only: str | None = None, keys=None) -> list[dict]:
    from scheduler.cluster import KEYS

    keys = keys or KEYS
    rows = []
    for ns in sorted(snapshot.namespaces.values(), key=lambda n: n.name):
        consortium = ns.labels.get(keys.consortium)
        if not consortium or (only and consortium != only):
            continue
        try:
            allocation = json.loads(ns.annotations.get(keys.allocation, "{}"))
        except ValueError:
            allocation = {}
        nxt = allocation.get("next_change") or {}
        rows.append({
            "namespace": ns.name, "consortium": consortium, "status": ns.labels.get(keys.status, ""),
            "stage": ns.labels.get(keys.stage, ""), "quota_gpus": ns.labels.get(keys.quota_gpus, ""),
            "allocated_gpus": ns.labels.get(keys.allocated_gpus, ""),
            "resource_quota": snapshot.quotas.get(ns.name, ""),
            "target": allocation.get("target", {}), "allocated": allocation.get("allocated", {}),
            "shortfall": allocation.get("shortfall", {}), "draining_nodes": allocation.get("draining_nodes", 0),
            "next_change": nxt.get("what", ""), "next_change_at": nxt.get("at", ""),
        })
    return rows


def cmd_run(args) -> int:
    """The daemon. With --simulate it first starts the sandbox API on a free local port, loads
    FILE (or a cluster sized from the policy) and runs against it over HTTP, exactly as against
    a real cluster."""
    import logging
    import os
    import signal
    import socket
    import tempfile
    import threading

    from scheduler.cluster.kube import Watcher, Writer, connect
    from scheduler.daemon.clock import Clock
    from scheduler.daemon.http import HealthServer
    from scheduler.daemon.leader import LeaderElector
    from scheduler.daemon.policy_source import PolicySource
    from scheduler.daemon.reconciler import Reconciler
    from scheduler.daemon.service import Daemon
    from scheduler.metrics import Metrics

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    source = PolicySource(args.policy)
    source.reload()
    if source.policy is None:
        print(str(source.error), file=sys.stderr)
        return 1
    policy = source.policy
    sandbox = None
    kubeconfig = args.kubeconfig
    if args.simulate is not None:
        from scheduler.cluster.synthetic import builtin_cluster
        from scheduler.sandbox import SandboxServer

        sandbox = SandboxServer(port=0).start()
        if args.simulate == "builtin":
            sandbox.load_list(builtin_cluster(policy))
        else:
            with open(args.simulate, "rb") as fh:
                sandbox.load_list(fh.read())
        sandbox.load_list({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.lease_namespace}}]})
        folder = tempfile.mkdtemp(prefix="gpu-scheduler-")
        kubeconfig = str(sandbox.write_kubeconfig(f"{folder}/kubeconfig"))
        keys = _keys(args)
        labels = ",".join((keys.status, keys.stage, keys.quota_gpus, keys.allocated_gpus))
        prefix = "" if args.label_prefix == DOMAIN else f" --label-prefix {args.label_prefix}"
        print(f"sandbox API on {sandbox.url}; follow the programme with:\n"
              f"  kubectl --kubeconfig {kubeconfig} get ns -L {labels}\n"
              f"  kubectl --kubeconfig {kubeconfig} get nodes -L {keys.consortium},{keys.node_state}\n"
              f"  gpu-scheduler status --kubeconfig {kubeconfig}{prefix}", flush=True)
    start = _instant(args.start, policy) if args.start else None
    if args.time_scale != 1 and start is None:
        start = _now(policy)
    clock = Clock(start=start, scale=args.time_scale)
    api = connect(kubeconfig, args.in_cluster)
    metrics = Metrics()
    elector = LeaderElector(api, args.lease_namespace, "gpu-scheduler-leader", f"{socket.gethostname()}-{os.getpid()}")
    # a dry run never campaigns for the Lease: it must not take leadership from the real daemon,
    # and it logs every write it would make as if it led
    reconciler = Reconciler(source, api, clock, metrics, Writer(api, dry_run=args.dry_run),
                            is_leader=(lambda: True) if args.dry_run else (lambda: elector.leading),
                            keys=_keys(args))
    daemon = Daemon(reconciler, source, clock, metrics, reconcile_every=args.reconcile_every,
                    namespace=args.lease_namespace)
    http = HealthServer(metrics.registry, daemon.ready, port=args.metrics_port).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def leadership(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        if leading:
            daemon.soon("became leader")

    elector.on_change = leadership
    if not args.dry_run:
        elector.start()
    daemon.start()
    # watches wake reconciles and, once a fresh list has shown the cache caught up with this
    # replica's writes, serve them (Reconciler._read)
    watcher = Watcher(api, _keys(args), on_change=daemon.changed).start()
    reconciler.cache = watcher  # steady-state reconciles read the watch cache once it matches a fresh list
    print(f"gpu-scheduler running: metrics on :{http.port}/metrics; programme time {clock.now().isoformat()}"
          f"{' x' + str(args.time_scale) if args.time_scale != 1 else ''}", flush=True)
    stop.wait()
    watcher.stop()
    daemon.stop()         # waits for an in-flight reconcile to finish its writes
    elector.stop(release=True)
    http.stop()
    if sandbox is not None:
        sandbox.stop()
    return 0


def cmd_agent(args) -> int:
    """The node agent (DESIGN section 9): NVML -> health -> the Node's telemetry annotation."""
    import logging
    import os
    import signal
    import socket
    import threading

    from scheduler.telemetry.agent import Agent, AgentConfig, NodeAnnotationPublisher, PrintPublisher
    from scheduler.telemetry.health import DEFAULT_IGNORED_XIDS, HealthRules
    from scheduler.telemetry.metrics import AgentMetrics
    from scheduler.telemetry.nvml import NvmlReader

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = args.node_name or os.environ.get("NODE_NAME") or socket.gethostname()
    if args.nvml_fake:
        from scheduler.telemetry.fake_nvml import FakeNvml, FakeNvmlFileError

        try:
            nvml = FakeNvml.from_file(args.nvml_fake)
        except (OSError, FakeNvmlFileError) as err:
            print(f"gpu-scheduler agent: {err}", file=sys.stderr)
            return 2
    else:
        import pynvml as nvml
    rules = HealthRules(ignored_xids=frozenset(args.ignore_xids) if args.ignore_xids is not None else DEFAULT_IGNORED_XIDS,
                        critical_xids=frozenset(args.critical_xids or ()), quiet_period=parse_duration(args.quiet_period))
    config = AgentConfig(node, interval=parse_duration(args.interval), heartbeat=parse_duration(args.heartbeat),
                         rules=rules)
    if args.dry_run:
        publisher = PrintPublisher(sys.stdout)
    else:
        from scheduler.cluster.kube import connect

        publisher = NodeAnnotationPublisher(connect(args.kubeconfig, args.in_cluster), _keys(args).telemetry)
    metrics = AgentMetrics(node)
    reader = NvmlReader(nvml)
    agent = Agent(reader, publisher, config, on_reading=metrics.observe, on_publish=metrics.writes.labels(node).inc)
    if args.once:
        agent.tick()
        reader.close()
        return 0
    from scheduler.daemon.http import HealthServer

    def ready() -> tuple[bool, str]:
        if agent.last_reading is None:
            return False, "no NVML reading yet"
        return True, "ok"

    http = HealthServer(metrics.registry, ready, port=args.metrics_port).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"gpu-scheduler agent on {node}: metrics on :{http.port}/metrics", file=sys.stderr, flush=True)
    agent.run(stop)
    reader.close()
    http.stop()
    return 0


def _xids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of XIDs") from None


def cmd_schema(args) -> int:
    from scheduler.policy.models import Program, Stage

    schemas = {"Program": Program.model_json_schema(mode="validation"),
               "Stage": Stage.model_json_schema(mode="validation")}
    if args.kind:
        out = schemas[args.kind]
    else:
        # one document is either kind: hoist both kinds' $defs to the root so every $ref resolves
        defs = {}
        for kind, schema in schemas.items():
            defs.update(schema.pop("$defs", {}))
            defs[kind] = schema
        out = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "title": "gpu-scheduler policy document", "$defs": defs,
               "oneOf": [{"$ref": "#/$defs/Program"}, {"$ref": "#/$defs/Stage"}]}
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-scheduler", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpu-scheduler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_policy(p):
        p.add_argument("--policy", default=DEFAULT_POLICY, help="policy folder or file (default: policies)")

    def with_prefix(p):
        p.add_argument("--label-prefix", default=DOMAIN, type=_prefix, metavar="PREFIX",
                       help=f"prefix of every label, annotation and taint key (default: {DOMAIN})")

    def with_output(p):
        p.add_argument("-o", "--output", choices=["table", "json"], help="default: table on a terminal, else json")

    p = sub.add_parser("validate", help="check the policy; one file:line: field: message per problem")
    with_policy(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="what the scheduler would do at an instant")
    with_policy(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cluster", help="kubectl get nodes,namespaces,resourcequotas,pods -A -o json output "
                                       "(or a NodeList; '-' for stdin; 'builtin' or absent: a cluster sized from the policy)")
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    p.add_argument("--at", help="instant to plan for (default: now); naive times are in the programme's timezone")
    with_prefix(p)
    with_output(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("simulate", help="replay the programme's timeline on a cluster")
    with_policy(p)
    p.add_argument("--cluster", help="cluster file as for plan (default: built-in cluster sized from the policy)")
    p.add_argument("--from", dest="from_", help="start (default: a day before the first stage)")
    p.add_argument("--to", help="end (default: a year after --from)")
    p.add_argument("--step", help="also plan every STEP (e.g. 1d), besides the change points")
    with_prefix(p)
    with_output(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("run", help="the daemon: keep a cluster in line with the policy")
    with_policy(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    src.add_argument("--simulate", nargs="?", const="builtin", metavar="FILE",
                     help="run against the embedded sandbox API, loaded with FILE or a cluster sized from the policy")
    p.add_argument("--dry-run", action="store_true", help="log every write it would make, make none")
    p.add_argument("--metrics-port", type=int, default=9090)
    p.add_argument("--time-scale", type=float, default=1.0, help="run the programme's clock N times faster")
    p.add_argument("--start", help="programme time to start from (with --time-scale)")
    p.add_argument("--reconcile-every", type=float, default=30.0, help="seconds between periodic reconciles")
    p.add_argument("--lease-namespace", default="gpu-scheduler")
    with_prefix(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="each consortium's quota, allocation, status and next change, as the cluster shows it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cluster", help="a kubectl get namespaces,resourcequotas -A -o json dump instead of a live cluster")
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    p.add_argument("--consortium", help="only this consortium")
    with_prefix(p)
    with_output(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("agent", help="the node agent: NVML health -> the Node's telemetry annotation + /metrics")
    p.add_argument("--node-name", help="this node (default: $NODE_NAME, else the host name)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    p.add_argument("--nvml-fake", metavar="FILE", help="read a fake NVML described by FILE (DESIGN section 9) instead of the GPUs")
    p.add_argument("--interval", default="10s", help="how often NVML is read (default 10s)")
    p.add_argument("--heartbeat", default="5m", help="publish at least this often, jittered +-10%% (default 5m)")
    p.add_argument("--quiet-period", default="10m", help="an unhealthy GPU is healthy again after this long with no "
                                                           "critical event (doubles while it flaps; default 10m)")
    p.add_argument("--ignore-xids", type=_xids, metavar="LIST",
                   help="XIDs that are not GPU faults (default 13,31,43,45,68,109, as the NVIDIA device plugin)")
    p.add_argument("--critical-xids", type=_xids, metavar="LIST", help="XIDs always critical, even if ignored")
    p.add_argument("--metrics-port", type=int, default=9401)
    p.add_argument("--once", action="store_true", help="read, publish and exit")
    p.add_argument("--dry-run", action="store_true", help="print the annotation JSON instead of writing it")
    with_prefix(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("schema", help="JSON Schema of the policy documents")
    p.add_argument("--kind", choices=["Program", "Stage"])
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("plan", "simulate"):
        # a short-lived process over one big, acyclic snapshot: the cycle collector would rescan
        # it again and again for nothing (a quarter of plan's CPU at 50,000 nodes); reference
        # counting frees everything that matters
        gc.disable()
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0
    except ValueError as err:
        print(f"gpu-scheduler: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
