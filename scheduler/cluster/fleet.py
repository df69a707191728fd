"""A programme of several clusters seen as one: each cluster's snapshot, combined for planning.

A job cannot span two clusters, but a team's quota is one number across all of them, so planning
sees every cluster at once. Node and namespace names are only unique inside a cluster: in the
combined snapshot they are qualified with their cluster's name, `cluster/name` (a slash is in no
Kubernetes object name, so the two never mix), and every node carries its cluster. A programme of
one cluster is planned on that cluster's snapshot as it is, with unqualified names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from scheduler.cluster.snapshot import GpuPod, Namespace, Node, Snapshot

SEPARATOR = "/"


def qualified(cluster: str, name: str) -> str:
    return f"{cluster}{SEPARATOR}{name}"


def split(name: str) -> tuple[str, str]:
    """(cluster, name) of a qualified name; ("", name) of a plain one."""
    cluster, sep, rest = name.partition(SEPARATOR)
    return (cluster, rest) if sep else ("", name)


def combine(parts: Mapping[str, Snapshot]) -> Snapshot:
    """One snapshot of several clusters' (by cluster name), names qualified (see above)."""
    nodes: list[Node] = []
    pods: list[GpuPod] = []
    namespaces: dict[str, Namespace] = {}
    quotas: dict[str, str] = {}
    for cluster, snap in sorted(parts.items()):
        prefix = cluster + SEPARATOR
        nodes += [n.with_(name=prefix + n.name, cluster=cluster) for n in snap.nodes]
        pods += [replace(p, node=prefix + p.node if p.node else "") for p in snap.pods]
        namespaces.update((prefix + name, ns) for name, ns in snap.namespaces.items())
        quotas.update((prefix + name, hard) for name, hard in snap.quotas.items())
    return Snapshot(nodes=tuple(nodes), namespaces=namespaces, quotas=quotas, pods=tuple(pods))


def part(snapshot: Snapshot, cluster: str) -> Snapshot:
    """One cluster's snapshot back out of a combined one, with its own (unqualified) names."""
    prefix = cluster + SEPARATOR
    n = len(prefix)
    return Snapshot(
        nodes=tuple(node.with_(name=node.name[n:], cluster="") for node in snapshot.nodes if node.cluster == cluster),
        namespaces={k[n:]: replace(v, name=k[n:]) for k, v in snapshot.namespaces.items() if k.startswith(prefix)},
        quotas={k[n:]: v for k, v in snapshot.quotas.items() if k.startswith(prefix)},
        pods=tuple(replace(p, node=p.node[n:]) for p in snapshot.pods if p.node.startswith(prefix)),
    )
