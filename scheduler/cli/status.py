"""`gpu-scheduler status`: each consortium's quota, allocation, status and next change, read
back from what the scheduler wrote on the namespaces (labels and the allocation annotation), so
it shows exactly what consortium engineers see with kubectl."""

from __future__ import annotations

from typing import Any

from scheduler.cluster import Keys, Snapshot
from scheduler.wire import allocation as allocation_wire


def status_rows(snapshot: Snapshot, keys: Keys, only: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for ns in sorted(snapshot.namespaces.values(), key=lambda n: n.name):
        consortium = ns.labels.get(keys.consortium)
        if not consortium or (only and consortium != only):
            continue
        record = None
        text = ns.annotations.get(keys.allocation)
        if text:
            try:
                record = allocation_wire.decode(text)
            except ValueError:
                record = None  # edited by hand: the labels still say the essentials
        nxt = record.next_change if record else None
        rows.append(
            {
                "namespace": ns.name,
                "consortium": consortium,
                "status": ns.labels.get(keys.status, ""),
                "stage": ns.labels.get(keys.stage, ""),
                "quota_gpus": ns.labels.get(keys.quota_gpus, ""),
                "allocated_gpus": ns.labels.get(keys.allocated_gpus, ""),
                "resource_quota": snapshot.quotas.get(ns.name, ""),
                "target": record.target if record else {},
                "allocated": record.allocated if record else {},
                "shortfall": record.shortfall if record else {},
                "short_gpus": ns.labels.get(keys.short_gpus, ""),
                "short": record.short if record else {},
                "short_reason": (record.short_reason or "") if record else "",
                "pending_stage": ns.labels.get(keys.pending_stage, ""),
                "draining_nodes": record.draining_nodes if record else 0,
                "next_change": nxt.what if nxt else "",
                "next_change_at": nxt.at if nxt else "",
                "cluster_gpus": ns.labels.get(keys.cluster_gpus, ""),
                "clusters": (record.clusters or {}) if record else {},
                "split_reason": (record.split_reason or "") if record else "",
            }
        )
    return rows


def missing_namespace_notes(rows: list[dict[str, Any]], read: list[str]) -> list[str]:
    """A programme of several clusters: a line for each cluster (of those `read`) where a team
    holds GPUs, by its allocation records, but none of its namespaces exists."""
    present = {(r.get("cluster"), r["consortium"]) for r in rows}
    notes = []
    holds = {}
    for r in rows:
        for cluster, per in r.get("clusters", {}).items():
            holds[(cluster, r["consortium"])] = sum(per.values())
    for (cluster, consortium), gpus in sorted(holds.items()):
        if gpus and cluster in read and (cluster, consortium) not in present:
            notes.append(
                f"{consortium} holds {gpus} GPU(s) in cluster {cluster}, where none of its namespaces exists: "
                "its ResourceQuota cannot be written there"
            )
    return notes
