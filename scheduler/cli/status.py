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
            }
        )
    return rows
