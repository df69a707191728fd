"""The `gpu-scheduler` command line: the parser (parser.py), one thin function per command
(commands.py), and how plans and statuses are shown (render.py, status.py)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from scheduler.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    if args.command in ("plan", "simulate"):
        # a short-lived process over one big, acyclic snapshot: the cycle collector would rescan
        # it again and again for nothing (a quarter of plan's CPU at 50,000 nodes); reference
        # counting frees everything that matters
        gc.disable()
    from scheduler.cli import commands  # only now: `--help` and usage errors never load the policy stack

    try:
        return int(getattr(commands, args.func)(args))
    except BrokenPipeError:
        return 0
    except ValueError as err:
        print(f"gpu-scheduler: {err}", file=sys.stderr)
        return 2


__all__ = ["main"]
