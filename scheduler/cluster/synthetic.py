"""Built-in clusters: what `simulate` and `run --simulate` use when no cluster file is given,
and the realistic node JSON the benchmarks decode.

Nodes look like what `kubectl get nodes -o json` prints on a GPU cluster with the NVIDIA GPU
Operator: GPU Feature Discovery labels, conditions, addresses, images (about 10 KB a node).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from scheduler.policy import UNITS, Policy, Pool

PRODUCTS = {"B200": "NVIDIA-B200", "H100": "NVIDIA-H100-80GB-HBM3", "H200": "NVIDIA-H200"}
MEMORY_MIB = {"B200": 183359, "H100": 81559, "H200": 143771}
CLIQUE_NODES = 18  # nodes per NVLink/IB block in the synthetic topology
MAX_BUILTIN_NODES = 100_000  # ten times the largest national fleet; a bigger one needs --cluster


class TooLarge(ValueError):
    """The built-in cluster this policy asks for is beyond MAX_BUILTIN_NODES."""


def builtin_size(policy: Policy) -> int:
    """How many nodes the built-in cluster of `policy` has."""
    return sum(nodes for nodes, _ in pool_sizes(policy).values())


def check_builtin_size(policy: Policy) -> None:
    total = builtin_size(policy)
    if total > MAX_BUILTIN_NODES:
        raise TooLarge(
            f"the built-in cluster sized from this policy would have {total:,} nodes (more than "
            f"{MAX_BUILTIN_NODES:,}): give the unsized pools a `size`, or plan on a real cluster with --cluster"
        )


def pool_sizes(policy: Policy) -> dict[str, tuple[int, int]]:
    """(nodes, GPUs per node) for every pool: its declared size, or enough for the largest
    demand on its model that any decided stage makes (units counted as this model)."""
    peak: dict[str, float] = {m: 0.0 for m in policy.models}
    for stage in policy.decided_stages():
        for m in policy.models:
            demand = 0.0
            for quota in stage.spec.quotas.values():
                demand += quota.get(m, 0)
                demand += quota.get(UNITS, 0) / policy.units(m)
            peak[m] = max(peak[m], demand)
    out: dict[str, tuple[int, int]] = {}
    for m in policy.models:
        pools = [p for p in policy.pools if p.gpuModel == m]
        unsized = [p for p in pools if p.size is None]
        for p in pools:
            if p.size is not None:
                out[p.name] = (p.size.nodes, p.size.gpusPerNode)
            else:
                out[p.name] = (max(1, math.ceil(peak[m] / 8 / len(unsized))), 8)
    return out


def node_object(
    name: str,
    pool: Pool | None,
    model: str,
    gpus: int,
    index: int,
    *,
    rich: bool = True,
    extra_labels: dict[str, str] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    """One Node as the API serves it. `rich` adds the bulk a real node carries (images, etc.)."""
    product = PRODUCTS.get(model, f"NVIDIA-{model}")
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": f"gpu-{model.lower()}-8x",
        "topology.kubernetes.io/region": "kr-central-1",
        "topology.kubernetes.io/zone": f"kr-central-1{'abc'[index % 3]}",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": str(MEMORY_MIB.get(model, 81559)),
        "nvidia.com/gpu.family": "blackwell" if model.startswith("B") else "hopper",
        "nvidia.com/gpu.machine": "HGX",
        "nvidia.com/gpu.compute.major": "10" if model.startswith("B") else "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver.major": "580",
        "nvidia.com/cuda.driver.minor": "65",
        "nvidia.com/cuda.driver.rev": "06",
        "nvidia.com/cuda.runtime.major": "13",
        "nvidia.com/cuda.runtime.minor": "0",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "single",
        "feature.node.kubernetes.io/pci-10de.present": "true",
        "nvidia.com/gpu.clique": f"{pool.name if pool else model.lower()}-c{index // CLIQUE_NODES:03d}",
    }
    if pool is not None:
        labels.update(pool.nodeSelector)
    labels.update(extra_labels or {})
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"00000000-0000-4000-8000-{index:012d}",
            "resourceVersion": str(1000 + index),
            "creationTimestamp": "2025-07-20T00:00:00Z",
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "nfd.node.kubernetes.io/feature-labels": "pci-10de.present",
            },
        },
        "spec": {"podCIDR": f"10.{index // 256 % 256}.{index % 256}.0/24", "providerID": f"baremetal://{name}"},
        "status": {
            "capacity": {
                "cpu": "224",
                "memory": "2113433508Ki",
                "nvidia.com/gpu": str(gpus),
                "pods": "110",
                "ephemeral-storage": "7500000000Ki",
            },
            "allocatable": {
                "cpu": "220",
                "memory": "2100000000Ki",
                "nvidia.com/gpu": str(gpus),
                "pods": "110",
                "ephemeral-storage": "6900000000Ki",
            },
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "lastHeartbeatTime": "2026-11-30T05:00:00Z",
                    "lastTransitionTime": "2025-07-20T00:10:00Z",
                    "reason": r,
                    "message": msg,
                }
                for t, s, r, msg in (
                    (
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    (
                        "Ready",
                        "True" if ready else "False",
                        "KubeletReady" if ready else "KubeletNotReady",
                        "kubelet is posting ready status" if ready else "container runtime is down",
                    ),
                )
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "kernelVersion": "6.8.0-60-generic",
                "osImage": "Ubuntu 24.04.2 LTS",
                "containerRuntimeVersion": "containerd://2.0.5",
                "kubeletVersion": "v1.35.2",
                "kubeProxyVersion": "v1.35.2",
                "operatingSystem": "linux",
                "machineID": f"{index:032x}",
                "systemUUID": f"{index:032x}",
                "bootID": f"{index:032x}",
            },
        },
    }
    if rich:
        obj["status"]["images"] = [
            {
                "names": [
                    f"nvcr.io/nvidia/{img}@sha256:{(index * 7919 + k) % (16**16):064x}",
                    f"nvcr.io/nvidia/{img}:{tag}",
                ],
                "sizeBytes": 1_000_000_000 + k * 12345,
            }
            for k, (img, tag) in enumerate(
                [
                    ("pytorch", "25.10-py3"),
                    ("nemo", "25.09"),
                    ("tritonserver", "25.10-py3"),
                    ("cuda", "13.0.1-base"),
                    ("k8s/dcgm-exporter", "4.4.1-4.6.0"),
                    ("gpu-operator", "v25.10.0"),
                    ("k8s-device-plugin", "v0.18.0"),
                    ("gpu-feature-discovery", "v0.18.0"),
                    ("driver", "580.65.06-ubuntu24.04"),
                    ("cloud-native/k8s-mig-manager", "v0.13.0"),
                    ("container-toolkit", "v1.18.0"),
                    ("cloud-native/dcgm", "4.4.1-1-ubuntu22.04"),
                    ("nccl-tests", "2.16.4"),
                    ("megatron-lm", "core-0.14"),
                    ("nemo-rl", "v0.4.0"),
                    ("vllm", "0.11.0"),
                    ("tensorrt-llm", "1.1.0"),
                    ("k8s/kube-proxy", "v1.35.2"),
                    ("calico/node", "v3.30.3"),
                    ("coredns/coredns", "v1.12.4"),
                    ("pause", "3.10"),
                    ("node-exporter", "v1.9.1"),
                    ("fluent-bit", "4.1.0"),
                    ("rdma-shared-dp", "v1.5.3"),
                    ("network-operator", "v25.7.0"),
                    ("mofed", "25.07-0.9.7.0"),
                    ("ib-kubernetes", "v1.1.2"),
                    ("nvidia-peermem", "580.65.06"),
                    ("gds", "2.26.6"),
                    ("validator", "v25.10.0"),
                ]
            )
        ]
    return obj


def builtin_cluster(policy: Policy, *, rich: bool = False, cluster: str | None = None) -> dict[str, Any]:
    """A v1 List with a node for every slot of every pool and each consortium's namespaces;
    `cluster`: only the pools of that cluster of the programme (and every namespace)."""
    check_builtin_size(policy)
    items: list[dict[str, Any]] = []
    index = 0
    sizes = pool_sizes(policy)
    for pool in policy.pools if cluster is None else policy.pools_in(cluster):
        nodes, gpus = sizes[pool.name]
        for i in range(nodes):
            items.append(node_object(f"{pool.name}-{i:04d}", pool, pool.gpuModel, gpus, i, rich=rich))
            index += 1
    for c in policy.consortia:
        for ns in c.namespaces:
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {},
                    "status": {"phase": "Active"},
                }
            )
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def builtin_clusters(policy: Policy, *, rich: bool = False) -> dict[str, dict[str, Any]]:
    """builtin_cluster for each cluster of the programme, by name (one entry for a programme of one)."""
    if not policy.multi_cluster:
        return {policy.cluster_names[0]: builtin_cluster(policy, rich=rich)}
    return {name: builtin_cluster(policy, rich=rich, cluster=name) for name in policy.cluster_names}


def synthetic_nodes(count: int, models: Iterable[tuple[Pool, str]], *, rich: bool = True) -> dict[str, Any]:
    """`count` nodes spread evenly over the given (pool, model) pairs, as a v1 List."""
    pairs = list(models)
    items = []
    for i in range(count):
        pool, model = pairs[i % len(pairs)]
        items.append(node_object(f"{pool.name}-{i // len(pairs):05d}", pool, model, 8, i // len(pairs), rich=rich))
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
