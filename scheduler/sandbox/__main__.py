"""`python -m scheduler.sandbox [--load FILE]... [--port N] [--kubeconfig PATH] [--faults FILE]`

Serves until SIGTERM or SIGINT. Prints `sandbox: serving on http://127.0.0.1:PORT` once ready.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from scheduler.sandbox.faults import Faults
from scheduler.sandbox.server import SandboxServer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scheduler.sandbox", description="A Kubernetes-compatible API server for tests and demos."
    )
    p.add_argument(
        "--load",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a `kubectl get ... -o json` List to load (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--kubeconfig", type=Path, metavar="PATH", help="write a kubeconfig here")
    p.add_argument("--token", default=None, help="require this bearer token (kubectl never sends one over plain http)")
    p.add_argument(
        "--faults",
        type=Path,
        metavar="FILE",
        help='JSON list of fault rules, e.g. [{"verb": "patch", "sequence": [409]}]',
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--history", type=int, default=10_000, help="watch history kept per resource (older resourceVersions get 410)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faults = None
    if args.faults:
        faults = Faults.from_spec(json.loads(args.faults.read_text()), seed=args.seed)
    server = SandboxServer(
        args.port, faults, host=args.host, token=args.token or None, seed=args.seed, history_limit=args.history
    )
    try:
        for path in args.load:
            n = server.load_list(path)
            print(f"sandbox: loaded {n} objects from {path}", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"sandbox: cannot load: {e}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    try:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(f"sandbox: serving on {server.url}", flush=True)
        done.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
