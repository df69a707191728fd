"""The commands of `gpu-scheduler`, one thin function each: parse what the flags name, call the
package, print. Heavy imports happen inside the command that needs them, so `validate` and
`--help` do not pay for the Kubernetes client or Prometheus."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler import DOMAIN
from scheduler.policy import Policy, PolicyError, load_policy
from scheduler.policy.errors import did_you_mean
from scheduler.policy.types import parse_duration, parse_instant

if TYPE_CHECKING:  # the cluster package (msgspec) is imported by the commands that read a cluster
    from scheduler.cluster import Keys


def _instant(text: str, policy: Policy) -> datetime:
    """A command-line instant; naive times are in the programme's timezone (as in policy files)."""
    return parse_instant(text, policy.timezone)


def _now(policy: Policy) -> datetime:
    return datetime.now(policy.timezone)


def _keys(args: argparse.Namespace) -> Keys:
    """The label/annotation/taint keys under the configured prefix (docs/daemon.md)."""
    from scheduler.cluster import Keys

    return Keys(args.label_prefix)


def _output(args: argparse.Namespace) -> str:
    if args.output:
        return str(args.output)
    return "table" if sys.stdout.isatty() else "json"


def _load(args: argparse.Namespace) -> Policy | None:
    try:
        return load_policy(args.policy)
    except PolicyError as err:
        print(str(err), file=sys.stderr)
        print(f"policy invalid: {len(err.issues)} problem(s)", file=sys.stderr)
        return None


def _snapshot(args: argparse.Namespace, policy: Policy) -> Any:
    """The cluster to plan on: files, live clusters, or (neither given) the built-in ones sized
    from the policy. A programme of several clusters is planned on all of them at once: one
    `--cluster NAME=FILE` each, or each cluster's kubeconfig context (--cluster-context)."""
    from scheduler.cluster import decode_snapshot
    from scheduler.cluster.fleet import combine
    from scheduler.cluster.synthetic import builtin_clusters, dumps
    from scheduler.planner.nodes import label_keys

    keys = _keys(args).reading(label_keys(policy))  # only the node labels planning reads
    live = (
        getattr(args, "kubeconfig", None)
        or getattr(args, "in_cluster", False)
        or getattr(args, "cluster_context", None)
    )
    files = args.cluster or []
    if files == ["builtin"] or not (files or live):
        parts = {name: decode_snapshot(dumps(cluster), keys) for name, cluster in builtin_clusters(policy).items()}
        return combine(parts) if policy.multi_cluster else next(iter(parts.values()))
    if not policy.multi_cluster:
        if len(files) > 1:
            print("--cluster: one file for a programme of one cluster", file=sys.stderr)
            return None
        return _read_cluster(args, keys)
    read = _read_files(files, policy, keys) if files else _read_contexts(args, policy, keys)
    return combine(read) if read is not None else None


def _read_files(files: list[str], policy: Policy, keys: Keys) -> dict[str, Any] | None:
    """NAME=FILE for each cluster of the programme (a cluster not given has no nodes)."""
    from scheduler.cluster import Snapshot, SnapshotError, decode_snapshot_file

    parts: dict[str, Any] = {name: Snapshot() for name in policy.cluster_names}
    for given in files:
        name, eq, path = given.partition("=")
        if not eq or name not in parts:
            print(
                f"--cluster {given}: a programme of several clusters takes NAME=FILE, NAME one of "
                f"{', '.join(policy.cluster_names)}{did_you_mean(name, policy.cluster_names) if eq else ''}",
                file=sys.stderr,
            )
            return None
        try:
            parts[name] = decode_snapshot_file(path, keys)
        except (OSError, SnapshotError) as err:
            print(f"{path}: {err}", file=sys.stderr)
            return None
    return parts


def _read_contexts(args: argparse.Namespace, policy: Policy, keys: Keys) -> dict[str, Any] | None:
    """Each cluster of the programme read live, through the context that reaches it."""
    from scheduler.actuator.connect import connect, context_names
    from scheduler.actuator.reads import read_snapshot
    from scheduler.daemon.links import RouteError, Routes

    if args.in_cluster:
        print(
            "--in-cluster reaches one cluster; a programme of several is read through a kubeconfig with a context "
            "per cluster (--kubeconfig, --cluster-context NAME=CONTEXT)",
            file=sys.stderr,
        )
        return None
    try:
        routes = Routes(contexts=dict(args.cluster_context)).resolve(
            policy, args.kubeconfig, [] if args.in_cluster else context_names(args.kubeconfig)
        )
    except RouteError as err:
        print(str(err), file=sys.stderr)
        return None
    parts = {}
    for name, route in routes.items():
        try:
            parts[name], _ = read_snapshot(
                connect(route.kubeconfig, args.in_cluster and route.own, route.context), keys
            )
        except Exception as err:  # noqa: BLE001 - connection or credentials: say so, no traceback
            print(f"cannot read cluster {name} ({route.describe()}): {err}", file=sys.stderr)
            return None
    return parts


def _read_cluster(args: argparse.Namespace, keys: Keys | None = None) -> Any:
    """A `kubectl get ... -o json` file (or '-' for stdin), else the live cluster; None after
    saying why on stderr. `keys`: as _keys(args), maybe reading fewer node labels."""
    from scheduler.cluster import SnapshotError, decode_snapshot, decode_snapshot_file

    keys = keys if keys is not None else _keys(args)
    given = args.cluster[0] if isinstance(args.cluster, list) else args.cluster
    if given:
        try:
            return decode_snapshot(sys.stdin.buffer.read(), keys) if given == "-" else decode_snapshot_file(given, keys)
        except (OSError, SnapshotError) as err:
            print(f"{given}: {err}", file=sys.stderr)
            return None
    from scheduler.actuator.connect import connect
    from scheduler.actuator.reads import read_snapshot

    try:
        snapshot, _ = read_snapshot(connect(args.kubeconfig, args.in_cluster), keys)
    except Exception as err:  # noqa: BLE001 - connection or credentials: say so, no traceback
        print(f"cannot read the cluster: {err}", file=sys.stderr)
        return None
    return snapshot


def cmd_validate(args: argparse.Namespace) -> int:
    policy = _load(args)
    if policy is None:
        return 1
    print(
        f"{args.policy}: valid ({len(policy.files)} file(s), {len(policy.stages)} stage(s), "
        f"{len(policy.consortia)} consortia, {len(policy.pools)} pools; sha256 {policy.sha256[:12]})"
    )
    for warning in policy.warnings:
        print(f"warning: {warning}")
    from scheduler.cluster.synthetic import TooLarge, check_builtin_size

    try:
        check_builtin_size(policy)
    except TooLarge as err:  # valid for a real cluster; only the built-in one cannot be made
        print(f"note: {err}")
    return 0


def _policy_and_cluster(args: argparse.Namespace) -> tuple[Policy, Any] | int:
    """The policy and the cluster to plan on, or the exit code after saying why not (1: the
    policy is invalid; 2: the cluster cannot be read)."""
    policy = _load(args)
    if policy is None:
        return 1
    snapshot = _snapshot(args, policy)
    if snapshot is None:
        return 2
    return policy, snapshot


def cmd_plan(args: argparse.Namespace) -> int:
    from scheduler.cli.render import plan_json, plan_table
    from scheduler.planner import plan

    loaded = _policy_and_cluster(args)
    if isinstance(loaded, int):
        return loaded
    policy, snapshot = loaded
    at = _instant(args.at, policy) if args.at else _now(policy)
    result = plan(policy, snapshot, at, _keys(args))
    print(plan_table(result) if _output(args) == "table" else plan_json(result))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from scheduler.cli.render import timeline_json, timeline_table
    from scheduler.planner.simulate import simulate

    loaded = _policy_and_cluster(args)
    if isinstance(loaded, int):
        return loaded
    policy, snapshot = loaded
    start = (
        _instant(args.from_, policy)
        if args.from_
        else (policy.stages[0].spec.start - timedelta(days=1) if policy.stages else _now(policy))
    )
    end = _instant(args.to, policy) if args.to else start + timedelta(days=365)
    if end < start:
        print("--to is before --from", file=sys.stderr)
        return 2
    output = _output(args)
    fmt, _, path = output.partition("=")
    if path and args.summary:
        print("--summary goes with -o table or -o json (the picture marks every change)", file=sys.stderr)
        return 2
    if args.by_cluster and not path:
        print("--by-cluster goes with -o png=FILE or -o svg=FILE (it splits the picture)", file=sys.stderr)
        return 2
    from scheduler.cli import timeline

    size = timeline.parse_size(args.size)
    step = parse_duration(args.step) if args.step else None
    steps = simulate(policy, snapshot, start, end, _keys(args), step)
    if not (path or args.summary):
        print(timeline_table(steps) if output == "table" else timeline_json(steps))
        return 0
    docs = json.loads(timeline_json(steps))  # the picture and the summary show what -o json says
    if args.summary:
        rows = timeline.summary_rows(docs, policy)
        print(
            timeline.summary_table(rows, policy)
            if output == "table"
            else json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False)
        )
        return 0
    return _picture(timeline.timeline_series(docs, policy, end, by_cluster=args.by_cluster), fmt, path, size)


def _picture(data: Any, fmt: str, path: str, size: tuple[int, int]) -> int:
    """Draw the timeline (matplotlib is imported here, and only here)."""
    try:
        from scheduler.cli import picture
    except ImportError as err:
        print(
            f"the picture needs {err.name or 'matplotlib'}, not installed: pip install 'gpu-scheduler[picture]'",
            file=sys.stderr,
        )
        return 2
    try:
        picture.write(data, fmt, path, size)
    except OSError as err:
        print(f"{path}: {err.strerror or err}", file=sys.stderr)
        return 2
    span = f"{data.start:%Y-%m-%d} to {data.end:%Y-%m-%d}"
    print(f"{path}: {fmt.upper()} {size[0]}x{size[1]}, the programme from {span} ({len(data.times)} plans)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """What a consortium engineer wants: quota, allocation, status, next change, from the labels
    and the allocation annotation the scheduler wrote on the namespaces. With --cluster-context or
    --all-contexts, every cluster of a programme of several, a row per cluster and namespace."""
    from scheduler.cli.render import status_table
    from scheduler.cli.status import missing_namespace_notes, status_rows

    keys = _keys(args)
    notes: list[str] = []
    if args.cluster_context or args.all_contexts:
        found = _status_of_contexts(args, keys)
        if found is None:
            return 2
        rows, read, notes = found
        everyone = rows
        rows = [r for r in rows if not args.consortium or r["consortium"] == args.consortium]
        notes += [n for n in missing_namespace_notes(rows, read)]
    else:
        snapshot = _read_cluster(args)
        if snapshot is None:
            return 2
        rows = status_rows(snapshot, keys, args.consortium)
        everyone = status_rows(snapshot, keys) if args.consortium and not rows else rows
    if args.consortium and not rows:
        known = sorted({row["consortium"] for row in everyone})
        print(
            f"no namespace of consortium {args.consortium!r} carries gpu-scheduler labels"
            + did_you_mean(args.consortium, known)
            + (f" (known: {', '.join(known)})" if known else ""),
            file=sys.stderr,
        )
        return 1
    if _output(args) == "json":
        print(json.dumps(rows, indent=2))
        for note in notes:
            print(note, file=sys.stderr)
    else:
        print(status_table(rows) if rows else "no namespace carries gpu-scheduler labels yet")
        for note in notes:
            print(note)
    return 0


def _status_of_contexts(args: argparse.Namespace, keys: Keys) -> tuple[list[Any], list[str], list[str]] | None:
    """Status rows of every cluster (a context each), the clusters read, and a line for each
    cluster that could not be read; None when there is no context to read."""
    from scheduler.actuator.connect import connect, context_names
    from scheduler.actuator.reads import read_snapshot
    from scheduler.actuator.retry import one_line
    from scheduler.cli.status import status_rows

    known = context_names(args.kubeconfig)
    contexts = dict(args.cluster_context) if args.cluster_context else {name: name for name in known}
    unknown = [ctx for ctx in contexts.values() if ctx not in known]
    if unknown or not contexts:
        print(
            f"the kubeconfig {args.kubeconfig or '(default)'} has no context "
            + (", ".join(repr(c) for c in unknown) if unknown else "at all (or cannot be read)"),
            file=sys.stderr,
        )
        return None
    rows: list[Any] = []
    read: list[str] = []
    notes: list[str] = []
    for name, context in contexts.items():
        try:
            snapshot, _ = read_snapshot(connect(args.kubeconfig, False, context), keys)
        except Exception as err:  # noqa: BLE001 - one cluster down must not hide the others
            notes.append(f"cluster {name}: cannot read it ({one_line(err)})")
            continue
        read.append(name)
        rows += [{"cluster": name, **row} for row in status_rows(snapshot, keys)]
    return rows, read, notes


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    # urllib3 warns on each connection retry inside one request; our own retries say it once
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def _stop_on_signals() -> Any:
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon (docs/daemon.md). With --simulate it first starts the sandbox API on a free
    local port, loads FILE (or a cluster sized from the policy) and runs against it over HTTP,
    exactly as against a real cluster."""
    from scheduler.daemon import app
    from scheduler.daemon.links import Routes

    _logging(args.verbose)
    keys = _keys(args)
    config = app.DaemonConfig(
        policy=args.policy,
        keys=keys,
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        dry_run=args.dry_run,
        metrics_port=args.metrics_port,
        time_scale=args.time_scale,
        reconcile_every=args.reconcile_every,
        lease_namespace=args.lease_namespace,
        routes=Routes(
            home=args.home_cluster, contexts=dict(args.cluster_context), kubeconfigs=dict(args.cluster_kubeconfig)
        ),
        create_namespaces=args.create_namespaces,
    )
    source = app.load_source(config)
    if source is None or source.policy is None:
        return 1
    policy = source.policy
    start = _instant(args.start, policy) if args.start else None
    if args.time_scale != 1 and start is None:
        start = _now(policy)
    sandbox, kubeconfig = None, ""
    if args.simulate is not None:
        sandbox, kubeconfig = _start_sandbox(args, policy, keys)
        config = replace(
            config,
            kubeconfig=kubeconfig,
            routes=replace(config.routes, home=config.routes.home or policy.cluster_names[0])
            if policy.multi_cluster
            else config.routes,
            lease_namespace=_simulate_namespace(args),
            metrics_host="127.0.0.1",
            progress_every=3.0,
        )
    config = replace(config, start=start)
    try:
        return app.run(config, source, _stop_on_signals())
    except app.SetupError as err:
        print(f"gpu-scheduler run: {err}", file=sys.stderr)
        return 2
    finally:
        if sandbox is not None:
            sandbox.stop()
            shutil.rmtree(Path(kubeconfig).parent, ignore_errors=True)  # the sandbox kubeconfig's own folder


def _simulate_namespace(args: argparse.Namespace) -> str:
    """Under --simulate the sandbox is ours: the Lease goes in gpu-scheduler unless told otherwise."""
    return str(args.lease_namespace or "gpu-scheduler")


def _start_sandbox(args: argparse.Namespace, policy: Policy, keys: Keys) -> tuple[Any, str]:
    """The sandbox API on a free port, loaded with FILE or a cluster sized from the policy, and a
    kubeconfig for it; prints how to follow the programme with kubectl. A programme of several
    clusters gets one sandbox per cluster (built-in clusters only) and one kubeconfig with a
    context named like each; its current context, the first cluster's, holds the leader Lease."""
    import tempfile

    from scheduler.cluster.synthetic import builtin_clusters
    from scheduler.sandbox import SandboxServer
    from scheduler.sandbox.kubeconfig import write_combined

    lease_namespace = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": _simulate_namespace(args)}}],
    }
    folder = tempfile.mkdtemp(prefix="gpu-scheduler-")
    if not policy.multi_cluster:
        sandbox = SandboxServer(port=0).start()
        if args.simulate == "builtin":
            sandbox.load_list(next(iter(builtin_clusters(policy).values())))
        else:
            with open(args.simulate, "rb") as fh:
                sandbox.load_list(fh.read())
        sandbox.load_list(lease_namespace)
        kubeconfig = str(sandbox.write_kubeconfig(f"{folder}/kubeconfig"))
        print(f"sandbox API on {sandbox.url}; {follow_commands(kubeconfig, keys)}", flush=True)
        return Sandboxes([sandbox]), kubeconfig
    if args.simulate != "builtin":
        raise SystemExit(
            "gpu-scheduler run: --simulate FILE is for a programme of one cluster; "
            "a programme of several runs on the built-in clusters (--simulate alone)"
        )
    sandboxes: dict[str, Any] = {}
    for name, cluster in builtin_clusters(policy).items():
        sandboxes[name] = SandboxServer(port=0).start()
        sandboxes[name].load_list(cluster)
    home = policy.cluster_names[0]
    sandboxes[home].load_list(lease_namespace)
    kubeconfig = str(
        write_combined(f"{folder}/kubeconfig", {name: (s.url, s.token) for name, s in sandboxes.items()}, current=home)
    )
    where = "; ".join(f"{name} on {s.url}" for name, s in sandboxes.items())
    print(f"sandbox APIs, one per cluster: {where}; {follow_commands(kubeconfig, keys, list(sandboxes))}", flush=True)
    return Sandboxes(list(sandboxes.values())), kubeconfig


class Sandboxes:
    """The sandbox API servers of a simulated run, stopped together."""

    def __init__(self, servers: list[Any]) -> None:
        self.servers = servers

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


KUBECTL_TOOLS = Path(".tools/bin/kubectl")  # where `make tools` installs kubectl (tests/tools/install.sh)


def follow_commands(kubeconfig: str, keys: Keys, contexts: list[str] | None = None) -> str:
    """How to follow the programme on `kubeconfig`, as commands that run from here: kubectl from
    .tools/bin when `make tools` put it there, else the one on PATH; and the same without kubectl.
    `contexts`: a programme of several clusters, a context each (the commands are shown for the
    first; --context picks another)."""
    import os

    if KUBECTL_TOOLS.is_file() and os.access(KUBECTL_TOOLS, os.X_OK):
        kubectl, missing = str(KUBECTL_TOOLS), ""
    else:
        kubectl = "kubectl"
        missing = "" if shutil.which("kubectl") else " (not installed: `make tools` puts one in .tools/bin)"
    labels = ",".join((keys.status, keys.stage, keys.quota_gpus, keys.allocated_gpus))
    prefix = "" if keys.prefix == DOMAIN else f" --label-prefix {keys.prefix}"
    if not contexts:
        return (
            f"follow the programme with kubectl{missing}:\n"
            f"  {kubectl} --kubeconfig {kubeconfig} get ns -L {labels}\n"
            f"  {kubectl} --kubeconfig {kubeconfig} get nodes -L {keys.consortium},{keys.node_state}\n"
            "or, without kubectl:\n"
            f"  {_self_command()} status --kubeconfig {kubeconfig} -o table{prefix}"
        )
    labels += f",{keys.cluster_gpus}"
    each = "".join(f"  {kubectl} --kubeconfig {kubeconfig} --context {c} get ns -L {labels}\n" for c in contexts)
    return (
        f"follow each cluster with kubectl{missing}:\n{each}"
        f"  {kubectl} --kubeconfig {kubeconfig} --context {contexts[0]} get nodes "
        f"-L {keys.consortium},{keys.node_state}\n"
        "or, every cluster at once, without kubectl:\n"
        f"  {_self_command()} status --kubeconfig {kubeconfig} --all-contexts -o table{prefix}"
    )


def _self_command() -> str:
    """This program as a command that runs from here: `gpu-scheduler` when it is on PATH, else
    its script beside this Python (.venv/bin/gpu-scheduler under `make run`), else `python -m`."""
    if shutil.which("gpu-scheduler"):
        return "gpu-scheduler"
    script = Path(sys.executable).parent / "gpu-scheduler"
    if script.is_file():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return f"{sys.executable} -m scheduler.cli"


def cmd_agent(args: argparse.Namespace) -> int:
    """The node agent (docs/telemetry.md): NVML -> health -> the Node's telemetry annotation."""
    import os
    import socket

    from scheduler.telemetry import app
    from scheduler.telemetry.health import DEFAULT_IGNORED_XIDS, HealthRules

    _logging(args.verbose)
    node = args.node_name or os.environ.get("NODE_NAME") or socket.gethostname()
    rules = HealthRules(
        ignored_xids=frozenset(args.ignore_xids) if args.ignore_xids is not None else DEFAULT_IGNORED_XIDS,
        critical_xids=frozenset(args.critical_xids or ()),
        quiet_period=parse_duration(args.quiet_period),
    )
    config = app.AgentAppConfig(
        node=node,
        telemetry_key=_keys(args).telemetry,
        rules=rules,
        interval=parse_duration(args.interval),
        heartbeat=parse_duration(args.heartbeat),
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        nvml_fake=args.nvml_fake,
        metrics_port=args.metrics_port,
        once=args.once,
        dry_run=args.dry_run,
    )
    try:
        return app.run(config, _stop_on_signals())
    except app.AgentSetupError as err:
        print(f"gpu-scheduler agent: {err}", file=sys.stderr)
        return 2


def cmd_schema(args: argparse.Namespace) -> int:
    from scheduler.policy.schema import Program, Stage

    schemas = {
        "Program": Program.model_json_schema(mode="validation"),
        "Stage": Stage.model_json_schema(mode="validation"),
    }
    if args.kind:
        out = schemas[args.kind]
    else:
        # one document is either kind: hoist both kinds' $defs to the root so every $ref resolves
        defs: dict[str, Any] = {}
        for kind, schema in schemas.items():
            defs.update(schema.pop("$defs", {}))
            defs[kind] = schema
        out = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "gpu-scheduler policy document",
            "$defs": defs,
            "oneOf": [{"$ref": "#/$defs/Program"}, {"$ref": "#/$defs/Stage"}],
        }
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0
