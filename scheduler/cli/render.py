"""Readable tables for people at a terminal (JSON is for tools)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from scheduler.planner.model import Plan

if TYPE_CHECKING:
    from scheduler.planner.simulate import Step


def _fmt(d: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(d.items())) or "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    return "\n".join(lines)


def plan_table(plan: Plan, *, max_actions: int = 20) -> str:
    head = f"Plan at {plan.at.isoformat()}  stage: {plan.stage or '-'}"
    if plan.decision_pending:
        head += f"  (decision pending: {plan.pending_stage}; {plan.stage or 'no stage'} stays in force)"
    out = [head, ""]
    out.append(
        table(
            ["CONSORTIUM", "STATUS", "QUOTA", "TARGET", "ALLOCATED", "SHORT", "NODES", "DRAINING", "NEXT CHANGE"],
            [
                [
                    c.name,
                    c.status,
                    _fmt(c.quota),
                    _fmt(c.target),
                    _fmt(c.allocated),
                    _fmt(c.short),
                    len(c.nodes),
                    len(c.draining_nodes),
                    f"{c.next_change.at.isoformat()} {c.next_change.what}" if c.next_change else "-",
                ]
                for c in plan.consortia
            ],
        )
    )
    out += [f"  {c.name} is short of {_fmt(c.short)}: {c.short_reason}" for c in plan.consortia if c.short]
    several = len(plan.clusters) > 1
    if several:
        out += [f"  {c.name}: {c.split_reason}" for c in plan.consortia if c.split_reason]
        out += [
            "",
            table(
                ["CLUSTER", "UP", "NODES", "HEALTHY", "ASSIGNED", "HELD BY"],
                [
                    [
                        k.name,
                        "yes" if k.up else "no (frozen as last seen)",
                        k.nodes,
                        k.gpus,
                        k.assigned_gpus,
                        " ".join(
                            f"{c.name}:{sum(c.clusters[k.name].values())}"
                            for c in plan.consortia
                            if sum(c.clusters.get(k.name, {}).values())
                        )
                        or "-",
                    ]
                    for k in plan.clusters
                ],
            ),
        ]
        out += [
            f"  {m.cluster}: {m.consortium} holds {m.gpus} GPU(s) here, but its namespace {m.namespace} does not exist"
            for m in plan.missing_namespaces
        ]
    out += [
        "",
        table(
            [
                "POOL",
                *(["CLUSTER"] if several else []),
                "MODEL",
                "NODES",
                "CAPACITY",
                "HEALTHY",
                "ASSIGNED",
                "IDLE",
                "AVAILABLE",
            ],
            [
                [
                    p.name,
                    *([p.cluster] if several else []),
                    p.gpu_model,
                    p.nodes,
                    p.capacity_gpus,
                    p.healthy_gpus,
                    p.assigned_gpus,
                    p.free_gpus,
                    "yes" if p.available else "no",
                ]
                for p in plan.pools
            ],
        ),
    ]
    idle = {p.gpu_model: 0 for p in plan.pools}
    for p in plan.pools:
        idle[p.gpu_model] += p.free_gpus if p.available else 0
    if any(idle.values()):
        out.append("  idle (usable, nobody holds them): " + ", ".join(f"{n} {m}" for m, n in sorted(idle.items()) if n))
    counts = Counter(a.action for a in plan.actions)
    out += ["", "Actions: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none")]
    shown = plan.actions[:max_actions]
    width = max([24, *(len(a.node or a.namespace) for a in shown)])  # cluster/node names in a programme of several
    for a in shown:
        target = a.node or a.namespace
        out.append(f"  {a.action:<16} {target:<{width}} {a.consortium:<10} {a.reason}")
    if len(plan.actions) > max_actions:
        out.append(f"  ... {len(plan.actions) - max_actions} more (use -o json for all)")
    return "\n".join(out)


def timeline_table(steps: Sequence[Step]) -> str:
    names = [c.name for c in steps[0].plan.consortia] if steps else []
    rows = []
    for s in steps:
        p = s.plan
        counts = Counter(a.action for a in p.actions if a.action in ("assign", "drain", "evict", "release"))
        cells = []
        for c in p.consortia:
            alloc, target = c.allocated_gpus, c.quota_gpus
            cell = f"{c.status[:4]} {alloc}/{target}"
            if c.draining_nodes:
                cell += f" d{len(c.draining_nodes)}"
            cells.append(cell)
        stage = (p.stage or "-") + ("*" if p.decision_pending else "")
        acts = " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"
        rows.append([s.at.isoformat(), stage, *cells, acts, s.why])
    legend = (
        "GPUs allocated/target per consortium (stat = first letters of the status, dN = nodes draining); "
        "* = a later round is pending"
    )
    return table(["AT", "STAGE", *names, "NODE ACTIONS", "WHY"], rows) + "\n\n" + legend


def pretty_json(doc: Any) -> str:
    """`json.dumps(doc, indent=2)`, byte for byte, several times faster, for documents of strings,
    integers, booleans, None, lists and dicts, as plans and timelines are (a test holds them free
    of floats, which the two libraries format differently): msgspec encodes and indents in C,
    where the standard library's indenting encoder is pure Python (at 10,000 nodes it took as
    long as planning). Text beyond printable ASCII, which the standard library escapes, is left
    to it."""
    text = msgspec.json.format(msgspec.json.encode(doc), indent=2).decode()
    return text if text.isascii() and "\x7f" not in text else json.dumps(doc, indent=2)


def plan_json(plan: Plan) -> str:
    return pretty_json(plan.to_dict())


def timeline_json(steps: Sequence[Step]) -> str:
    return pretty_json([dict(s.plan.to_dict(), why=s.why) for s in steps])


def status_table(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    notes = [
        f"{r['namespace']}: {r['consortium']} is short of {_fmt(r['short'])}: {r['short_reason']}"
        for r in rows
        if r.get("short") and r.get("short_reason")
    ]
    notes = list(dict.fromkeys(notes))  # several clusters: the same team-wide note once
    notes += list(dict.fromkeys(f"{r['consortium']}: {r['split_reason']}" for r in rows if r.get("split_reason")))
    pending = sorted({r["pending_stage"] for r in rows if r.get("pending_stage") not in (None, "", "none")})
    notes += [f"the decision of {p} is pending: the stage shown stays in force until it is decided" for p in pending]
    return _status_rows(rows) + "".join("\n" + n for n in notes)


def _status_rows(rows: list[Mapping[str, Any]]) -> str:
    if any("cluster" in r for r in rows):  # several clusters: a row per cluster and namespace
        return table(
            ["CLUSTER", "HERE", *_STATUS_COLUMNS],
            [
                [r.get("cluster", ""), r.get("cluster_gpus") or "-", *row]
                for r, row in zip(rows, _status_cells(rows), strict=True)
            ],
        )
    return table(_STATUS_COLUMNS, _status_cells(rows))


_STATUS_COLUMNS = [
    "NAMESPACE",
    "CONSORTIUM",
    "STATUS",
    "STAGE",
    "QUOTA",
    "ALLOCATED",
    "RESOURCEQUOTA",
    "SHORT",
    "DRAINING",
    "NEXT CHANGE",
]


def _status_cells(rows: list[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            r["namespace"],
            r["consortium"],
            r["status"],
            r["stage"]
            + (f" ({r['pending_stage']} pending)" if r.get("pending_stage") not in (None, "", "none") else ""),
            r["quota_gpus"],
            r["allocated_gpus"],
            r["resource_quota"],
            _fmt(r["short"]) if r.get("short") else "-",
            r["draining_nodes"],
            f"{r['next_change_at']} {r['next_change']}".strip() or "-",
        ]
        for r in rows
    ]
