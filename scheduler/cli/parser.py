"""The command line's grammar: every subcommand, flag and default (docs: README, the CLI section)."""

from __future__ import annotations

import argparse
import re

from scheduler import DOMAIN, __version__
from scheduler.policy.errors import did_you_mean

# the policy's document kinds (policy.models.KINDS, tested equal): named here so that building the
# parser, and so `--help`, imports neither the commands nor pydantic (start-up, docs/performance.md)
KINDS = ("Program", "Stage")

DEFAULT_POLICY = "policies"
DESCRIPTION = "gpu-scheduler: hands a national GPU fleet to competing AI consortia and takes it back, safely."


def _prefix(text: str) -> str:
    """A label-key prefix is a DNS subdomain (Kubernetes rejects anything else in a key)."""
    if len(text) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS subdomain (like example.com)")
    return text


def _xids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of XIDs") from None


def _kind(text: str) -> str:
    if text not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r}{did_you_mean(text, KINDS)}: one of {', '.join(KINDS)}")
    return text


def _instant(text: str) -> str:
    """A date or datetime, checked here so a typo is a usage error naming its flag and the formats
    accepted; kept as text, since a naive time is read in the policy's timezone, known later."""
    from scheduler.policy.types import parse_instant

    try:
        parse_instant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _name_is(text: str) -> tuple[str, str]:
    """NAME=VALUE (a cluster and its context or kubeconfig file)."""
    name, eq, value = text.partition("=")
    if not eq or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def _simulate_output(text: str) -> str:
    """table, json, or png=FILE / svg=FILE (the timeline picture, written to FILE)."""
    kind, eq, path = text.partition("=")
    if (not eq and kind in ("table", "json")) or (eq and kind in ("png", "svg") and path):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: one of table, json, png=FILE, svg=FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-scheduler", description=DESCRIPTION, epilog="gpu-scheduler COMMAND --help: that command's flags"
    )
    parser.add_argument("--version", action="version", version=f"gpu-scheduler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    def with_policy(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policy", default=DEFAULT_POLICY, help="policy folder or file (default: policies)")

    def with_clusters(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--cluster-context",
            type=_name_is,
            action="append",
            default=[],
            metavar="NAME=CONTEXT",
            help="the kubeconfig context that reaches the policy's cluster NAME (repeatable; default: the "
            "context named NAME)",
        )

    def with_prefix(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--label-prefix",
            default=DOMAIN,
            type=_prefix,
            metavar="PREFIX",
            help=f"prefix of every label, annotation and taint key (default: {DOMAIN})",
        )

    def with_output(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", choices=["table", "json"], help="default: table on a terminal, else json")

    p = sub.add_parser("validate", help="check the policy; one file:line: field: message per problem")
    with_policy(p)
    p.set_defaults(func="cmd_validate")

    p = sub.add_parser("plan", help="what the scheduler would do at an instant")
    with_policy(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--cluster",
        action="append",
        metavar="[NAME=]FILE",
        help="kubectl get nodes,namespaces,resourcequotas,pods -A -o json output "
        "(or a NodeList; '-' for stdin; 'builtin' or absent: a cluster sized from the policy); a programme of "
        "several clusters: NAME=FILE for each",
    )
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    with_clusters(p)
    p.add_argument(
        "--at", type=_instant, metavar="TIME", help="instant to plan for (default: now; no offset: programme's zone)"
    )
    with_prefix(p)
    with_output(p)
    p.set_defaults(func="cmd_plan")

    p = sub.add_parser("simulate", help="replay the programme's timeline on a cluster")
    with_policy(p)
    p.add_argument(
        "--cluster",
        action="append",
        metavar="[NAME=]FILE",
        help="cluster file as for plan (default: built-in clusters sized from the policy)",
    )
    p.add_argument(
        "--from", dest="from_", type=_instant, metavar="TIME", help="start (default: a day before the first stage)"
    )
    p.add_argument("--to", type=_instant, metavar="TIME", help="end (default: a year after --from)")
    p.add_argument("--step", help="also plan every STEP (e.g. 1d), besides the change points")
    with_prefix(p)
    p.add_argument(
        "-o",
        "--output",
        type=_simulate_output,
        metavar="{table,json,png=FILE,svg=FILE}",
        help="table or json (default: table on a terminal, else json), or the programme's timeline "
        "picture written to FILE as PNG or SVG (GPUs held per consortium, capacity, idle, the changes marked)",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="with table or json: one row per change that matters (stage starts, cuts, additions, quotas, "
        "pools opening and leases ending, shortfalls), not one per plan",
    )
    p.add_argument("--size", default="1600x900", metavar="WxH", help="the picture's size in pixels (default 1600x900)")
    p.add_argument(
        "--by-cluster",
        action="store_true",
        help="the picture: one panel per cluster (a programme of several clusters)",
    )
    p.set_defaults(func="cmd_simulate")

    p = sub.add_parser("run", help="the daemon: keep a cluster in line with the policy")
    with_policy(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    src.add_argument(
        "--simulate",
        nargs="?",
        const="builtin",
        metavar="FILE",
        help="run against the embedded sandbox API, loaded with FILE or a cluster sized from the policy",
    )
    p.add_argument("--dry-run", action="store_true", help="log every write it would make, make none")
    p.add_argument("--metrics-port", type=int, default=9090)
    p.add_argument("--time-scale", type=float, default=1.0, help="run the programme's clock N times faster")
    p.add_argument("--start", type=_instant, metavar="TIME", help="programme time to start from (with --time-scale)")
    p.add_argument("--reconcile-every", type=float, default=30.0, help="seconds between periodic reconciles")
    with_clusters(p)
    p.add_argument(
        "--cluster-kubeconfig",
        type=_name_is,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a kubeconfig of its own (its current context) for the policy's cluster NAME (repeatable)",
    )
    p.add_argument(
        "--home-cluster",
        metavar="NAME",
        help="the policy's cluster that the daemon's own connection reaches (in cluster, or the kubeconfig's "
        "current context); the leader Lease stays there",
    )
    p.add_argument(
        "--create-namespaces",
        action="store_true",
        help="create a namespace a consortium needs in a cluster where it does not exist "
        "(default: a Warning Event, a metric and a status line say it is missing)",
    )
    p.add_argument(
        "--lease-namespace",
        help="namespace of the leader Lease and the scheduler's Events (default: the pod's own in cluster, "
        "the kubeconfig context's outside; with --simulate: gpu-scheduler, created)",
    )
    with_prefix(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func="cmd_run")

    p = sub.add_parser("status", help="each consortium's quota, allocation and next change, as written")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--cluster", help="a kubectl get namespaces,resourcequotas -A -o json dump instead of a live cluster"
    )
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    with_clusters(p)
    p.add_argument(
        "--all-contexts",
        action="store_true",
        help="read every context of the kubeconfig, one cluster each (a programme of several clusters)",
    )
    p.add_argument("--consortium", help="only this consortium")
    with_prefix(p)
    with_output(p)
    p.set_defaults(func="cmd_status")

    p = sub.add_parser("agent", help="the node agent: GPU health to its Node's annotation and /metrics")
    p.add_argument("--node-name", help="this node (default: $NODE_NAME, else the host name)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kubeconfig")
    src.add_argument("--in-cluster", action="store_true")
    p.add_argument(
        "--nvml-fake", metavar="FILE", help="read a fake NVML described by FILE (docs/telemetry.md) instead of the GPUs"
    )
    p.add_argument("--interval", default="10s", help="how often NVML is read (default 10s)")
    p.add_argument("--heartbeat", default="5m", help="publish at least this often, jittered +-10%% (default 5m)")
    p.add_argument(
        "--quiet-period",
        default="10m",
        help="an unhealthy GPU is healthy again after this long with no "
        "critical event (doubles while it flaps; default 10m)",
    )
    p.add_argument(
        "--ignore-xids",
        type=_xids,
        metavar="LIST",
        help="XIDs that are not GPU faults (default 13,31,43,45,68,109, as the NVIDIA device plugin)",
    )
    p.add_argument("--critical-xids", type=_xids, metavar="LIST", help="XIDs always critical, even if ignored")
    p.add_argument("--metrics-port", type=int, default=9401)
    p.add_argument("--once", action="store_true", help="read, publish and exit")
    p.add_argument("--dry-run", action="store_true", help="print the annotation JSON instead of writing it")
    with_prefix(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func="cmd_agent")

    p = sub.add_parser("schema", help="JSON Schema of the policy documents")
    p.add_argument("--kind", choices=KINDS, type=_kind, help="one kind's schema (default: either kind)")
    p.set_defaults(func="cmd_schema")
    return parser
