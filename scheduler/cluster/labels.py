"""Every label, annotation and taint key gpu-scheduler manages (the contract in docs/daemon.md).

The prefix is configurable (`--label-prefix`, the chart's `labelPrefix`); every key derives from
one `Keys` value, and every function that reads or writes a key takes that value explicitly: a
default here once let one code path use the default prefix while the rest used the configured one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property

from scheduler import DOMAIN
from scheduler.wire.quota import GPU_RESOURCE
from scheduler.wire.quota import NAME as RESOURCE_QUOTA_NAME


@dataclass(frozen=True)
class Keys:
    prefix: str = DOMAIN
    # the node label keys decoding keeps (None: every label). Planning reads a handful (the pools'
    # selectors and topology keys, ours); a typical GPU node carries 25-30 (GPU Feature Discovery,
    # topology, kubelet). Keeping only those makes the daemon's cache of a fleet several times
    # smaller, and changes to labels nobody reads wake no reconcile.
    node_labels: frozenset[str] | None = None
    # the keys below are read for every node of every list and watch event: each is formatted once

    def _k(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def reading(self, labels: Iterable[str]) -> Keys:
        """These keys, decoding only `labels` (and the labels gpu-scheduler writes) on nodes."""
        return replace(self, node_labels=frozenset(labels) | {self.consortium, self.node_state})

    # node
    @cached_property
    def consortium(self) -> str:
        return self._k("consortium")

    @cached_property
    def node_state(self) -> str:
        return self._k("node-state")

    @cached_property
    def drain_started(self) -> str:
        return self._k("drain-started")

    @cached_property
    def drain_deadline(self) -> str:
        return self._k("drain-deadline")

    @cached_property
    def drain_reason(self) -> str:
        return self._k("drain-reason")

    @cached_property
    def telemetry(self) -> str:
        return self._k("telemetry")

    @cached_property
    def draining_taint(self) -> str:
        return self._k("draining")

    # namespace
    @cached_property
    def stage(self) -> str:
        return self._k("stage")

    @cached_property
    def status(self) -> str:
        return self._k("status")

    @cached_property
    def quota_gpus(self) -> str:
        return self._k("quota-gpus")

    @cached_property
    def allocated_gpus(self) -> str:
        return self._k("allocated-gpus")

    @cached_property
    def short_gpus(self) -> str:
        return self._k("short-gpus")

    @cached_property
    def cluster(self) -> str:
        """On Events: the cluster of a programme of several that they are about."""
        return self._k("cluster")

    @cached_property
    def cluster_gpus(self) -> str:
        """GPUs the team holds in this namespace's cluster (a programme of several clusters)."""
        return self._k("cluster-gpus")

    @cached_property
    def pending_stage(self) -> str:
        return self._k("pending-stage")

    def quota_model(self, model: str) -> str:
        return self._k(f"quota-{model.lower()}")

    @cached_property
    def allocation(self) -> str:
        return self._k("allocation")


__all__ = ["GPU_RESOURCE", "RESOURCE_QUOTA_NAME", "Keys"]
