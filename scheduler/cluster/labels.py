"""Every label, annotation and taint key gpu-scheduler manages (the contract in docs/daemon.md).

The prefix is configurable (`--label-prefix`, the chart's `labelPrefix`); every key derives from
one `Keys` value, and every function that reads or writes a key takes that value explicitly: a
default here once let one code path use the default prefix while the rest used the configured one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

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

    def _k(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def reading(self, labels: Iterable[str]) -> Keys:
        """These keys, decoding only `labels` (and the labels gpu-scheduler writes) on nodes."""
        return replace(self, node_labels=frozenset(labels) | {self.consortium, self.node_state})

    # node
    @property
    def consortium(self) -> str:
        return self._k("consortium")

    @property
    def node_state(self) -> str:
        return self._k("node-state")

    @property
    def drain_started(self) -> str:
        return self._k("drain-started")

    @property
    def drain_deadline(self) -> str:
        return self._k("drain-deadline")

    @property
    def drain_reason(self) -> str:
        return self._k("drain-reason")

    @property
    def telemetry(self) -> str:
        return self._k("telemetry")

    @property
    def draining_taint(self) -> str:
        return self._k("draining")

    # namespace
    @property
    def stage(self) -> str:
        return self._k("stage")

    @property
    def status(self) -> str:
        return self._k("status")

    @property
    def quota_gpus(self) -> str:
        return self._k("quota-gpus")

    @property
    def allocated_gpus(self) -> str:
        return self._k("allocated-gpus")

    @property
    def short_gpus(self) -> str:
        return self._k("short-gpus")

    @property
    def pending_stage(self) -> str:
        return self._k("pending-stage")

    def quota_model(self, model: str) -> str:
        return self._k(f"quota-{model.lower()}")

    @property
    def allocation(self) -> str:
        return self._k("allocation")


__all__ = ["GPU_RESOURCE", "RESOURCE_QUOTA_NAME", "Keys"]
