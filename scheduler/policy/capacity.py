"""Warnings, not errors: quotas that together may ask for more than the pools hold.

A quota larger than every pool of its model is an error (crosscheck). Quotas that only together
exceed the pools are legal (teams share them fairly and the plan shows who is short), and a pool
without `size` cannot be checked at all; both deserve a word at validation time rather than
silence, so an operator learns of a shortage from `validate`, not from a team on round day.
"""

from __future__ import annotations

from datetime import datetime

from scheduler.policy.errors import PolicyIssue
from scheduler.policy.models import UNITS, Pool, Program, Stage
from scheduler.policy.yamlmarks import Document


def overcommit_warnings(program: Program, pdoc: Document, stages: list[tuple[Document, Stage]]) -> list[PolicyIssue]:
    spec = program.spec
    out: list[PolicyIssue] = []
    index = {p.name: i for i, p in enumerate(spec.pools)}
    unsized_warned: set[tuple[str, str]] = set()
    ordered = sorted(stages, key=lambda ds: ds[1].spec.start)
    for n, (doc, stage) in enumerate(ordered):
        if stage.spec.pending or not stage.spec.quotas:
            continue
        start = stage.spec.start
        end = next((later.spec.start for _, later in ordered[n + 1 :] if not later.spec.pending), None)
        live = [p for p in spec.pools if _in_window(p, start, end) and p.gpuModel in spec.gpuModels]
        name = stage.metadata.name
        for model in sorted(spec.gpuModels):
            demand = sum(q.get(model, 0) for q in stage.spec.quotas.values())
            pools = [p for p in live if p.gpuModel == model]
            if demand == 0 or not pools:
                continue
            unsized = [p for p in pools if p.size is None]
            for p in unsized:
                if (p.name, name) in unsized_warned:
                    continue
                unsized_warned.add((p.name, name))
                out.append(
                    PolicyIssue(
                        pdoc.file,
                        pdoc.line_of(("spec", "pools", index[p.name], "name")),
                        f"spec.pools[{index[p.name]}]",
                        f"pool {p.name!r} has no size: the quotas of {name} ask for {demand} {model} GPUs in total, "
                        "which cannot be checked against it (set size: {nodes, gpusPerNode})",
                    )
                )
            if unsized:
                continue
            most = sum(_gpus(p) for p in pools)
            if demand > most:
                out.append(
                    PolicyIssue(
                        doc.file,
                        doc.line_of(("spec", "quotas"), key=True),
                        "spec.quotas",
                        f"the quotas of {name} ask for {demand} {model} GPUs in total, more than the {most} its "
                        f"{model} pools ({', '.join(p.name for p in pools)}) hold: teams will share them and be short",
                    )
                )
        if any(UNITS in q for q in stage.spec.quotas.values()):
            units_total = sum(q.get(UNITS, 0) for q in stage.spec.quotas.values())
            for p in live:
                if p.size is None and (p.name, name) not in unsized_warned:
                    unsized_warned.add((p.name, name))
                    out.append(
                        PolicyIssue(
                            pdoc.file,
                            pdoc.line_of(("spec", "pools", index[p.name], "name")),
                            f"spec.pools[{index[p.name]}]",
                            f"pool {p.name!r} has no size: the units quotas of {name} ({units_total} units in "
                            "total) may draw on it, which cannot be checked (set size: {nodes, gpusPerNode})",
                        )
                    )
        units_demand = sum(
            q.get(UNITS, 0) + sum(g * spec.gpuModels[m].units for m, g in q.items() if m in spec.gpuModels)
            for q in stage.spec.quotas.values()
        )
        if live and all(p.size is not None for p in live):
            most_units = sum(_gpus(p) * spec.gpuModels[p.gpuModel].units for p in live)
            has_units = any(UNITS in q for q in stage.spec.quotas.values())
            if has_units and units_demand > most_units:
                out.append(
                    PolicyIssue(
                        doc.file,
                        doc.line_of(("spec", "quotas"), key=True),
                        "spec.quotas",
                        f"the quotas of {name} ask for {units_demand} units in total, more than the {most_units} "
                        "units all its pools hold: teams will share them and be short",
                    )
                )
    return out


def _gpus(pool: Pool) -> int:
    assert pool.size is not None
    return pool.size.nodes * pool.size.gpusPerNode


def _in_window(p: Pool, start: datetime, end: datetime | None) -> bool:
    return (p.availableUntil is None or p.availableUntil > start) and (
        end is None or p.availableFrom is None or p.availableFrom < end
    )
