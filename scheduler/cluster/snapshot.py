"""What planning needs to know about a cluster, and nothing more: a small, immutable model.

The planner works on a Snapshot, never on live API objects, so `plan`, `simulate`, the daemon
and the tests all run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import msgspec

EMPTY: Mapping[str, str] = MappingProxyType({})


class Taint(msgspec.Struct, frozen=True, gc=False):
    key: str
    value: str = ""
    effect: str = "NoSchedule"


class Node(msgspec.Struct, frozen=True, gc=False):
    """One GPU node as planning sees it. A struct rather than a dataclass: a fleet has tens of
    thousands, built on every list and watch event, and a struct is built in a twentieth of the
    time, untracked by the cycle collector (nothing in it refers back to it)."""

    name: str
    labels: Mapping[str, str] = EMPTY
    allocatable_gpus: int = 0
    ready: bool = True
    unschedulable: bool = False
    owner: str | None = None  # consortium label
    state: str | None = None  # node-state label
    drain_started: datetime | None = None
    drain_deadline: datetime | None = None
    drain_reason: str | None = None  # why it drains (drain-reason annotation), carried over by replanning
    taints: tuple[Taint, ...] = ()
    annotations: Mapping[str, str] = EMPTY  # only the ones under our prefix
    healthy_gpus: int | None = None  # from agent telemetry; None = none, or too old (see fresh())
    utilization: float | None = None  # 0..1, from agent telemetry
    telemetry_at: datetime | None = None  # when the agent read NVML
    cluster: str = ""  # the programme's cluster it was read from; "" in a programme of one (fleet.py)

    @property
    def gpus(self) -> int:
        """Healthy GPUs: allocatable, lowered (never raised) by fresh telemetry."""
        if self.healthy_gpus is None:
            return self.allocatable_gpus
        return max(0, min(self.allocatable_gpus, self.healthy_gpus))

    @property
    def draining(self) -> bool:
        return self.drain_deadline is not None or self.state == "draining"

    def telemetry_stale(self, at: datetime, stale_after: timedelta) -> bool:
        return self.telemetry_at is not None and at - self.telemetry_at > stale_after

    def without_telemetry(self) -> Node:
        return msgspec.structs.replace(self, healthy_gpus=None, utilization=None, telemetry_at=None)

    def settled(self, other: Node, telemetry_key: str) -> bool:
        """Equal for planning's purposes, ignoring what an agent heartbeat changes on its own (the
        report's timestamp and utilisation): heartbeats must not wake reconciles, while a change
        of healthy GPUs must."""
        return msgspec.structs.replace(
            self, telemetry_at=None, utilization=None, annotations=_without(self.annotations, telemetry_key)
        ) == msgspec.structs.replace(
            other, telemetry_at=None, utilization=None, annotations=_without(other.annotations, telemetry_key)
        )

    def with_(self, **changes: Any) -> Node:
        return msgspec.structs.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class GpuPod:
    """A pod that asks for GPUs and has not finished (Succeeded/Failed pods free their GPUs)."""

    namespace: str
    name: str
    node: str
    gpus: int
    phase: str = "Running"


@dataclass(frozen=True)
class Snapshot:
    nodes: tuple[Node, ...] = ()
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    quotas: Mapping[str, str] = field(
        default_factory=dict
    )  # namespace -> hard requests.nvidia.com/gpu of our ResourceQuota
    pods: tuple[GpuPod, ...] = ()

    def pods_by_node(self) -> dict[str, list[GpuPod]]:
        out: dict[str, list[GpuPod]] = {}
        for pod in self.pods:
            if pod.node:
                out.setdefault(pod.node, []).append(pod)
        return out

    def fresh(self, at: datetime, stale_after: timedelta) -> tuple[Snapshot, int]:
        """This snapshot with telemetry older than `stale_after` dropped, and how many nodes had
        it. Stale telemetry is ignored (the node counts its allocatable GPUs), never read as zero
        GPUs: a dead agent must not look like a dead node."""
        stale = [n for n in self.nodes if n.telemetry_stale(at, stale_after)]
        if not stale:
            return self, 0
        names = {n.name for n in stale}
        nodes = tuple(n.without_telemetry() if n.name in names else n for n in self.nodes)
        return replace(self, nodes=nodes), len(stale)

    def same_as(self, other: Snapshot, telemetry_key: str) -> bool:
        """The same cluster as planning sees it, whatever order the objects were listed in (agent
        heartbeats that change only timestamps and utilisation aside)."""
        mine = sorted(self.nodes, key=lambda n: n.name)
        theirs = sorted(other.nodes, key=lambda n: n.name)
        return (
            len(mine) == len(theirs)
            and all(a.settled(b, telemetry_key) for a, b in zip(mine, theirs, strict=False))
            and dict(self.namespaces) == dict(other.namespaces)
            and dict(self.quotas) == dict(other.quotas)
            and sorted(self.pods, key=_pod_key) == sorted(other.pods, key=_pod_key)
        )

    def replace(self, **changes: Any) -> Snapshot:
        return replace(self, **changes)


def _pod_key(p: GpuPod) -> tuple[str, str]:
    return (p.namespace, p.name)


def _without(mapping: Mapping[str, str], key: str) -> Mapping[str, str]:
    return {k: v for k, v in mapping.items() if k != key} if key in mapping else mapping
