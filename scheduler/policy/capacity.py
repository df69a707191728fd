"""Warnings, not errors: quotas that together may ask for more than the pools hold.

A quota larger than every pool of its model is an error (crosscheck). Quotas that only together
exceed the pools are legal (teams share them fairly and the plan shows who is short), and a pool
without `size` cannot be checked at all; both deserve a word at validation time rather than
silence, so an operator learns of a shortage from `validate`, not from a team on round day.
"""

from __future__ import annotations

from scheduler.policy.crosscheck import open_during, stage_end
from scheduler.policy.errors import PolicyIssue
from scheduler.policy.models import UNITS, Pool, Program, Stage
from scheduler.policy.yamlmarks import Document


def overcommit_warnings(program: Program, pdoc: Document, stages: list[tuple[Document, Stage]]) -> list[PolicyIssue]:
    spec = program.spec
    out: list[PolicyIssue] = []
    index = {p.name: i for i, p in enumerate(spec.pools)}
    unsized_warned: set[tuple[str, str]] = set()

    def unsized(pool: Pool, stage: str, asked: str) -> None:
        """Once per pool and stage: the pool has no size, so what the quotas ask cannot be checked."""
        if (pool.name, stage) in unsized_warned:
            return
        unsized_warned.add((pool.name, stage))
        i = index[pool.name]
        out.append(
            PolicyIssue(
                pdoc.file,
                pdoc.line_of(("spec", "pools", i, "name")),
                f"spec.pools[{i}]",
                f"pool {pool.name!r} has no size: {asked} (set size: {{nodes, gpusPerNode}})",
            )
        )

    def too_much(doc: Document, message: str) -> None:
        out.append(PolicyIssue(doc.file, doc.line_of(("spec", "quotas"), key=True), "spec.quotas", message))

    ordered = sorted(stages, key=lambda ds: ds[1].spec.start)
    for n, (doc, stage) in enumerate(ordered):
        if stage.spec.pending or not stage.spec.quotas:
            continue
        start, end = stage.spec.start, stage_end(ordered, n)
        live = [p for p in spec.pools if open_during(p, start, end) and p.gpuModel in spec.gpuModels]
        name = stage.metadata.name
        quotas = stage.spec.quotas.values()
        for model in sorted(spec.gpuModels):
            demand = sum(q.get(model, 0) for q in quotas)
            pools = [p for p in live if p.gpuModel == model]
            if demand == 0 or not pools:
                continue
            for p in pools:
                if p.size is None:
                    asked = f"the quotas of {name} ask for {demand} {model} GPUs in total"
                    unsized(p, name, f"{asked}, which cannot be checked against it")
            if any(p.size is None for p in pools):
                continue
            most = sum(_gpus(p) for p in pools)
            if demand > most:
                too_much(
                    doc,
                    f"the quotas of {name} ask for {demand} {model} GPUs in total, more than the {most} its "
                    f"{model} pools ({', '.join(p.name for p in pools)}) hold: teams will share them and be short",
                )
        if not any(UNITS in q for q in quotas):
            continue
        units_total = sum(q.get(UNITS, 0) for q in quotas)
        for p in live:
            if p.size is None:
                unsized(
                    p,
                    name,
                    f"the units quotas of {name} ({units_total} units in total) may draw on it, "
                    "which cannot be checked",
                )
        if live and all(p.size is not None for p in live):
            units = {m: spec.gpuModels[m].units for m in spec.gpuModels}
            demand = units_total + sum(g * units[m] for q in quotas for m, g in q.items() if m in units)
            most = sum(_gpus(p) * units[p.gpuModel] for p in live)
            if demand > most:
                too_much(
                    doc,
                    f"the quotas of {name} ask for {demand} units in total, more than the {most} "
                    "units all its pools hold: teams will share them and be short",
                )
    return out


def _gpus(pool: Pool) -> int:
    assert pool.size is not None
    return pool.size.nodes * pool.size.gpusPerNode
