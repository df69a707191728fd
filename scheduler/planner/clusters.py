"""One cluster's share of a plan of several: what the actuator writes to that cluster's API.

The plan of a programme of several clusters names nodes and namespaces `cluster/name`
(scheduler.cluster.fleet); each cluster is written with its own names. Team-wide facts (status,
quota, targets) stay as they are: they are the same in every cluster.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import msgspec

from scheduler.cluster.fleet import SEPARATOR
from scheduler.planner.model import Plan

V = TypeVar("V")


def for_cluster(plan: Plan, cluster: str) -> Plan:
    """`plan` as `cluster`'s API should see it: its nodes and namespaces only, unqualified."""
    prefix = cluster + SEPARATOR
    n = len(prefix)

    def mine(names: dict[str, V]) -> dict[str, V]:
        return {k[n:]: v for k, v in names.items() if k.startswith(prefix)}

    def names(items: list[str]) -> list[str]:
        return [k[n:] for k in items if k.startswith(prefix)]

    return replace(
        plan,
        consortia=[replace(c, nodes=names(c.nodes), draining_nodes=names(c.draining_nodes)) for c in plan.consortia],
        pools=[p for p in plan.pools if p.cluster == cluster],
        actions=[
            msgspec.structs.replace(
                a, node=a.node[n:] if a.node else "", namespace=a.namespace[n:] if a.namespace else ""
            )
            for a in plan.actions
            if (a.node or a.namespace).startswith(prefix)
        ],
        node_intents=mine(plan.node_intents),
        namespace_labels=mine(plan.namespace_labels),
        namespace_annotations=mine(plan.namespace_annotations),
        namespace_quotas=mine(plan.namespace_quotas),
        assign_order=names(plan.assign_order),
        foreign_pods=[replace(f, node=f.node[n:]) for f in plan.foreign_pods if f.node.startswith(prefix)],
        clusters=[c for c in plan.clusters if c.name == cluster],
        missing_namespaces=[m for m in plan.missing_namespaces if m.cluster == cluster],
        cluster=cluster,
    )
