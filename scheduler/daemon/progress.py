"""One line about where the programme stands, for someone watching `run` (a demo with `--simulate`,
an operator tailing a log): the programme's time in its own timezone, the stage in force, each
team's GPUs held against its target, and what changes next, or that nothing does any more.

Plain text, one line per call, no cursor tricks, so it reads the same in a terminal and in a log.
"""

from __future__ import annotations

from datetime import datetime

from scheduler.planner.model import ACTIVE, PENDING, WINDING_DOWN, Plan

_SHORT = {ACTIVE: "", PENDING: " pending", WINDING_DOWN: " winding down"}


def progress_line(plan: Plan, now: datetime) -> str:
    """`now` is the programme clock (in the plan's timezone on the line); the rest is the latest plan."""
    at = now.astimezone(plan.at.tzinfo).strftime("%Y-%m-%d %H:%M %Z")
    stage = plan.stage or "before the first stage"
    if plan.decision_pending:
        stage += f" ({plan.pending_stage} undecided)"
    teams = []
    for c in plan.consortia:
        if c.status not in _SHORT:
            continue  # ineligible and eliminated teams hold nothing and wait for nothing
        short = f" (short {' '.join(f'{m}:{n}' for m, n in sorted(c.short.items()))})" if c.short else ""
        teams.append(f"{c.name} {c.allocated_gpus}/{c.quota_gpus}{_SHORT[c.status]}{short}")
    held = ", ".join(teams) or "no team holds GPUs"
    if plan.next_change is not None:
        nxt = f"next: {plan.next_change.what} at {plan.next_change.at.strftime('%Y-%m-%d %H:%M')}"
    else:
        nxt = "no change ahead: the programme as written is over" if plan.stage else "no stage scheduled"
    return f"[{at}] {stage} | GPUs held/target: {held} | {nxt}"
