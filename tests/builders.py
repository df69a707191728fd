"""Build programmes and clusters for tests in a few lines."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from scheduler.cluster import GpuPod, Namespace, Node, Snapshot
from tests.keys import KEYS
from scheduler.policy import Policy, load_policy_texts

KST = ZoneInfo("Asia/Seoul")


def t(text: str) -> datetime:
    """A Korean-time instant: t("2026-01-15 00:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=KST)


DEFAULT_POOLS = (
    "{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, topologyKey: block}",
    "{name: b200, gpuModel: B200, nodeSelector: {pool: b200}, topologyKey: block}",
)


def program_yaml(*, consortia: str = "a b c", pools: tuple[str, ...] = DEFAULT_POOLS, wind_down: str = "{}",
                 models: str = "{H100: {units: 1}, B200: {units: 2}}", clusters: str | None = None) -> str:
    """A Program document; `pools` are YAML flow mappings, one per pool; `clusters` a YAML flow
    sequence (none: the programme's one cluster)."""
    pool_lines = "\n".join(f"    - {p}" for p in pools)
    cons = "\n".join(f"    - {{name: {c}, namespaces: [{c}-ns]}}" for c in consortia.split())
    return (
        "apiVersion: gpu-scheduler.sovereign-ai.kr/v1\n"
        "kind: Program\n"
        "metadata: {name: test-programme}\n"
        "spec:\n"
        "  timezone: Asia/Seoul\n"
        f"  gpuModels: {models}\n"
        f"  pools:\n{pool_lines}\n"
        f"  consortia:\n{cons}\n"
        f"  windDown: {wind_down}\n"
        + (f"  clusters: {clusters}\n" if clusters is not None else "")
    )


def stage_yaml(name: str, start: str, eligible: str, quotas: str = "{}", wind_down: str | None = None) -> str:
    out = (
        "apiVersion: gpu-scheduler.sovereign-ai.kr/v1\n"
        "kind: Stage\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  start: {start}\n"
        f"  eligible: {eligible}\n"
        f"  quotas: {quotas}\n"
    )
    if wind_down:
        out += f"  windDown: {wind_down}\n"
    return out


def programme(*stages: str, **program_kw) -> Policy:
    """A validated Policy from stage documents (see stage_yaml) and Program options."""
    return load_policy_texts({"program.yaml": program_yaml(**program_kw), "stages.yaml": "---\n".join(stages)})


def nodes(pool: str, count: int, *, gpus: int = 8, owner: str | None = None, block_size: int = 4,
          start: int = 0, ready: bool = True, unschedulable: bool = False, healthy: int | None = None,
          draining_until: datetime | None = None, drain_started: datetime | None = None) -> list[Node]:
    out = []
    for i in range(start, start + count):
        labels = {"pool": pool, "block": f"{pool}-b{i // block_size}"}
        ann = {}
        state = None
        if owner:
            labels[KEYS.consortium] = owner
            state = "assigned"
        if draining_until is not None:
            state = "draining"
            ann[KEYS.drain_deadline] = draining_until.isoformat()
        if state:
            labels[KEYS.node_state] = state
        out.append(Node(name=f"{pool}-{i:03d}", labels=MappingProxyType(labels), allocatable_gpus=gpus, ready=ready,
                        unschedulable=unschedulable, owner=owner, state=state, healthy_gpus=healthy,
                        drain_deadline=draining_until, drain_started=drain_started if draining_until else None,
                        annotations=MappingProxyType(ann)))
    return out


def cluster(*groups: list[Node], pods: list[GpuPod] = (), namespaces: list[str] = ()) -> Snapshot:
    all_nodes = sorted((n for g in groups for n in g), key=lambda n: n.name)
    return Snapshot(nodes=tuple(all_nodes), namespaces={ns: Namespace(ns) for ns in namespaces}, pods=tuple(pods))


def busy(node_names, namespace: str = "x", gpus: int = 8) -> list[GpuPod]:
    return [GpuPod(namespace, f"job-{n}", n, gpus) for n in node_names]
