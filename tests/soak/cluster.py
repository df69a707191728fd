"""The cluster the soak runs on: the built-in cluster of the real programme, every pool cut to
1/scale of its nodes (at least one), plus a node agent (a pod without GPUs) on some nodes.

Why smaller: a steady reconcile of the built-in cluster's 1,532 nodes takes 0.2-0.5 s of reads
on a loaded 2-core machine and its first one writes 1,876 times (5 s); the soak reconciles
hundreds of times in two clusters. A smaller fleet keeps every mechanism (units sharing,
shortage, wind-downs, drains, lease ends, the government pools opening) at a cost that fits.
"""

from __future__ import annotations

import math
from typing import Any

from scheduler.cluster.synthetic import builtin_cluster, node_object, pool_sizes
from scheduler.policy import Policy
from scheduler.sandbox import Faults, SandboxServer

LEASE_NAMESPACE = "gpu-scheduler"
AGENT_NAMESPACE = "kube-system"
AGENT_EVERY = 5  # a node agent on every 5th node (by name)


def soak_cluster(policy: Policy, scale: int) -> dict[str, Any]:
    """A v1 List: nodes, the consortia's namespaces and the daemon's own namespace."""
    if scale <= 1:
        cluster = builtin_cluster(policy)
    else:
        items: list[dict[str, Any]] = []
        for pool in policy.pools:
            nodes, gpus = pool_sizes(policy)[pool.name]
            for i in range(max(1, math.ceil(nodes / scale))):
                items.append(node_object(f"{pool.name}-{i:04d}", pool, pool.gpuModel, gpus, i, rich=False))
        items += [namespace(ns) for c in policy.consortia for ns in c.namespaces]
        cluster = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
    cluster["items"].append(namespace(LEASE_NAMESPACE))
    return cluster


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}, "spec": {},
            "status": {"phase": "Active"}}


def node_names(cluster: dict[str, Any]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in cluster["items"] if i["kind"] == "Node")


def gpu_pod(namespace_: str, name: str, node: str, gpus: int) -> dict[str, Any]:
    """A training job's pod, bound to its node and running."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace_, "labels": {"app": "train"}},
            "spec": {"nodeName": node, "containers": [{
                "name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                "resources": {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": "Running"}}


def agent_pod(node: str) -> dict[str, Any]:
    """A DaemonSet pod without GPUs: a drain must never touch it."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"node-agent-{node}", "namespace": AGENT_NAMESPACE, "labels": {"app": "node-agent"}},
            "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "gpu-scheduler:agent",
                                                       "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Running"}}


def agent_pods(names: list[str]) -> list[dict[str, Any]]:
    return [agent_pod(n) for i, n in enumerate(names) if i % AGENT_EVERY == 0]


def side_door(server: SandboxServer, faults: Faults) -> SandboxServer:
    """A second API server on `server`'s store, for the daemon's Watcher: the same objects and
    watches, its own faults. The Watcher's requests then never take a fault meant for a
    reconcile's (its threads run when they run), so a seed replays request for request."""
    door = SandboxServer(port=0, faults=faults, builtin_namespaces=False)
    door.store = server.store
    door.ctx.store = server.store
    return door.start()
