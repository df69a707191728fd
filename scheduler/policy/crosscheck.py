"""Checks that span documents: names that must exist, stages that must not collide, quotas that
must be holdable. Each issue points at the line of the offending field."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from scheduler.policy.errors import PolicyIssue, did_you_mean
from scheduler.policy.models import UNITS, Cluster, Consortium, GpuModel, Pool, Program, Stage
from scheduler.policy.yamlmarks import Document, Path


def crosscheck(program: Program, pdoc: Document, stages: list[tuple[Document, Stage]]) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    spec = program.spec

    def at(doc: Document, path: Path, message: str, *, key: bool = False) -> None:
        field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        issues.append(PolicyIssue(doc.file, doc.line_of(path, key=key), field, message))

    named: tuple[tuple[str, str, Sequence[Pool | Consortium | Cluster]], ...] = (
        ("pool", "pools", spec.pools),
        ("consortium", "consortia", spec.consortia),
        ("cluster", "clusters", spec.clusters),
    )
    for kind, plural, items in named:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                at(
                    pdoc,
                    ("spec", plural, i, "name"),
                    f"{kind} {item.name!r} is defined twice (first at index {seen[item.name]})",
                )
            seen.setdefault(item.name, i)

    owner: dict[str, str] = {}
    for i, c in enumerate(spec.consortia):
        for j, ns in enumerate(c.namespaces):
            if ns in owner and owner[ns] != c.name:
                at(
                    pdoc,
                    ("spec", "consortia", i, "namespaces", j),
                    f"namespace {ns!r} already belongs to consortium {owner[ns]!r}",
                )
            owner.setdefault(ns, c.name)

    clusters = list(dict.fromkeys(c.name for c in spec.clusters))
    for i, pool in enumerate(spec.pools):
        if pool.cluster is not None and pool.cluster not in clusters:
            at(
                pdoc,
                ("spec", "pools", i, "cluster"),
                f"unknown cluster {pool.cluster!r}{did_you_mean(pool.cluster, clusters)}: "
                + (
                    f"declare it in spec.clusters ({', '.join(clusters)})"
                    if clusters
                    else "declare it in spec.clusters"
                ),
            )
        elif pool.cluster is None and len(clusters) > 1:
            at(
                pdoc,
                ("spec", "pools", i, "name"),
                f"pool {pool.name!r} names no cluster, and spec.clusters lists {len(clusters)} "
                f"({', '.join(clusters)}): say which one its nodes are in (cluster: ...)",
            )
        if pool.gpuModel not in spec.gpuModels:
            at(
                pdoc,
                ("spec", "pools", i, "gpuModel"),
                f"unknown GPU model {pool.gpuModel!r}{did_you_mean(pool.gpuModel, spec.gpuModels)}: "
                f"declare it in spec.gpuModels ({', '.join(sorted(spec.gpuModels))})",
            )
        if pool.availableFrom and pool.availableUntil and pool.availableUntil <= pool.availableFrom:
            at(
                pdoc,
                ("spec", "pools", i, "availableUntil"),
                f"the pool's window ends ({pool.availableUntil.isoformat()}) "
                f"before it starts ({pool.availableFrom.isoformat()})",
            )

    consortia = {c.name for c in spec.consortia}
    starts: dict[datetime, Document] = {}
    names: dict[str, Document] = {}
    ordered = sorted(stages, key=lambda ds: ds[1].spec.start)
    for n, (doc, stage) in enumerate(ordered):
        name = stage.metadata.name
        if name in names:
            other = names[name]
            at(
                doc,
                ("metadata", "name"),
                f"stage {name!r} is defined twice (also in {other.file}:{other.line_of(('metadata', 'name'))})",
            )
        names.setdefault(name, doc)
        start = stage.spec.start
        if start in starts:
            other = starts[start]
            at(
                doc,
                ("spec", "start"),
                f"two stages start at {start.isoformat()} "
                f"(the other is in {other.file}:{other.line_of(('spec', 'start'))}); "
                "the stage in force would be ambiguous",
            )
        starts.setdefault(start, doc)

        listed: dict[str, int] = {}
        for j, e in enumerate(stage.spec.eligibility()):
            if e.consortium not in consortia:
                at(
                    doc,
                    ("spec", "eligible", j),
                    f"unknown consortium {e.consortium!r}{did_you_mean(e.consortium, consortia)}: "
                    "declare it in the Program's spec.consortia",
                )
            if e.consortium in listed:
                at(doc, ("spec", "eligible", j), f"consortium {e.consortium!r} is listed twice")
            listed.setdefault(e.consortium, j)
            following = ordered[n + 1][1].spec.start if n + 1 < len(ordered) else None
            if e.from_ is not None and following is not None and e.from_ >= following:
                at(
                    doc,
                    ("spec", "eligible", j, "from"),
                    f"{e.consortium!r} becomes eligible at {e.from_.isoformat()}, after the next stage "
                    f"starts ({following.isoformat()}): it would never be eligible in this one",
                )

        if stage.spec.pending and stage.spec.quotas:
            at(
                doc,
                ("spec", "quotas"),
                "a pending stage cannot set quotas: decide the round (list the eligible consortia) first",
                key=True,
            )
            continue
        end = stage_end(ordered, n)
        for cname, quota in stage.spec.quotas.items():
            if cname not in consortia:
                at(
                    doc,
                    ("spec", "quotas", cname),
                    f"quota for unknown consortium {cname!r}{did_you_mean(cname, consortia)}",
                    key=True,
                )
                continue
            if cname not in listed:
                at(
                    doc,
                    ("spec", "quotas", cname),
                    f"quota for {cname!r}, which is not eligible in this stage",
                    key=True,
                )
            for model, gpus in quota.items():
                path = ("spec", "quotas", cname, model)
                if model != UNITS and model not in spec.gpuModels:
                    at(
                        doc,
                        path,
                        f"unknown GPU model {model!r}{did_you_mean(model, [*spec.gpuModels, UNITS])}: "
                        f"expected one of {', '.join(sorted(spec.gpuModels))} or units",
                        key=True,
                    )
                    continue
                if gpus == 0:
                    continue
                problem = _unholdable(spec.pools, spec.gpuModels, model, gpus, start, end)
                if problem:
                    at(doc, path, problem, key=True)
    return issues


def _unholdable(
    pools: list[Pool], models: dict[str, GpuModel], model: str, amount: int, start: datetime, end: datetime | None
) -> str | None:
    """Why no pool of `model` could ever hold `amount` during [start, end), or None if one could."""
    if model == UNITS:
        live = [p for p in pools if open_during(p, start, end) and p.gpuModel in models]
        if not live:
            return "no pool is available at any time during this stage"
        sized = [(p, p.size) for p in live if p.size]
        if len(sized) == len(live):
            most = sum(size.nodes * size.gpusPerNode * models[p.gpuModel].units for p, size in sized)
            if amount > most:
                return f"{amount} units exceed the {most} units that all pools together could hold during this stage"
        return None
    live = [p for p in pools if p.gpuModel == model and open_during(p, start, end)]
    if not live:
        return f"no {model} pool is available at any time during this stage"
    sized = [(p, p.size) for p in live if p.size]
    if len(sized) == len(live):
        most = sum(size.nodes * size.gpusPerNode for _, size in sized)
        if amount > most:
            names = ", ".join(p.name for p in live)
            return f"{amount} {model} GPUs exceed the {most} that the {model} pools ({names}) could hold"
    return None


def stage_end(ordered: Sequence[tuple[Document, Stage]], n: int) -> datetime | None:
    """When the `n`th stage (of `ordered`, by start) stops being in force: at the next *decided*
    stage's start (a pending round keeps it in force), or never."""
    return next((later.spec.start for _, later in ordered[n + 1 :] if not later.spec.pending), None)


def open_during(pool: Pool, start: datetime, end: datetime | None) -> bool:
    """Whether the pool is available at some time during [start, end)."""
    return (pool.availableUntil is None or pool.availableUntil > start) and (
        end is None or pool.availableFrom is None or pool.availableFrom < end
    )
