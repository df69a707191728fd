"""Fault injection: make chosen requests fail (409, 410, 429 with Retry-After, 500) or answer
slowly, by verb and resource, either as an explicit sequence or as a seeded random fraction.

    faults = Faults(seed=7)
    faults.add(verb="patch", resource="nodes", sequence=[409, 409, None])  # two conflicts, then ok
    faults.add(verb="list", resource="pods", fraction=0.25, fault=500)
    faults.add(verb="get", fault=Fault.slow(0.2), fraction=1.0)
    faults.add(verb="watch", resource="nodes", sequence=[410])           # the next watch expires

Rules are consulted in the order they were added; the first one that matches the request and is
not used up decides (a sequence entry of None means "answer normally"). Verbs are the
apiserver's: get, list, watch, create, update, patch, delete, deletecollection; resources are
plural names with an optional subresource ("nodes/status", "pods/eviction"), or "*". Events of
both API groups are "events". `counts` tallies what was injected by (verb, resource, kind).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FAULT_STATUSES = (409, 410, 429, 500)


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # 409, 410, 429, 500; None: a normal answer (after `delay`)
    delay: float = 0.0  # seconds to wait before answering
    retry_after: int = 1  # the Retry-After header of a 429

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in FAULT_STATUSES:
            raise ValueError(f"fault status must be one of {FAULT_STATUSES}, not {self.status}")
        if self.delay < 0:
            raise ValueError("fault delay must be >= 0")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @property
    def kind(self) -> str:
        return str(self.status) if self.status is not None else "slow"


FaultLike = Fault | int | None


def as_fault(value: FaultLike | Mapping[str, Any]) -> Fault | None:
    if value is None or isinstance(value, Fault):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a fault: {value!r}")
    if isinstance(value, int):
        return Fault(status=value)
    if isinstance(value, Mapping):
        return Fault(
            status=value.get("status"),
            delay=float(value.get("delay", 0.0)),
            retry_after=int(value.get("retry_after", 1)),
        )
    raise ValueError(f"not a fault: {value!r} (use an HTTP status, Fault(...) or None)")


class FaultRule:
    def __init__(
        self,
        verb: str,
        resource: str,
        sequence: Sequence[FaultLike] | None,
        fraction: float | None,
        fault: FaultLike,
        rng: random.Random,
    ) -> None:
        if (sequence is None) == (fraction is None):
            raise ValueError("give either sequence=[...] or fraction=... (with fault=...)")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        if fraction is not None and as_fault(fault) is None:
            raise ValueError("a fraction needs fault=... (an HTTP status or Fault)")
        self.verb = verb
        self.resource = resource
        self.remaining = [as_fault(f) for f in sequence] if sequence is not None else None
        self.fraction = fraction
        self.fault = as_fault(fault)
        self._rng = rng

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and not self.remaining

    def draw(self) -> Fault | None:
        if self.remaining is not None:
            return self.remaining.pop(0)
        assert self.fraction is not None
        return self.fault if self._rng.random() < self.fraction else None


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(
        self,
        *,
        verb: str = "*",
        resource: str = "*",
        sequence: Sequence[FaultLike] | None = None,
        fraction: float | None = None,
        fault: FaultLike = None,
    ) -> FaultRule:
        rule = FaultRule(verb, resource, sequence, fraction, fault, self._rng)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pick(self, verb: str, resource: str) -> Fault | None:
        """The fault for this request, or None; counts what it returns."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(verb, resource) and not rule.exhausted:
                    fault = rule.draw()
                    if fault is not None:
                        self.counts[(verb, resource, fault.kind)] += 1
                    return fault
            return None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def injected(self, kind: str | int | None = None, verb: str | None = None, resource: str | None = None) -> int:
        """How many faults were injected, optionally of one kind ("429", 429, "slow"), verb or
        resource."""
        want = None if kind is None else str(kind)
        return sum(
            n
            for (v, r, k), n in self.counts.items()
            if (want is None or k == want) and (verb is None or v == verb) and (resource is None or r == resource)
        )

    @classmethod
    def from_spec(cls, rules: Iterable[Mapping[str, Any]], seed: int = 0) -> Faults:
        """Rules as data (the CLI's --faults JSON file): [{"verb": "patch", "resource": "nodes",
        "sequence": [409, null]}, {"verb": "list", "fraction": 0.1, "fault": 500},
        {"fraction": 1, "fault": {"delay": 0.5}}]."""
        faults = cls(seed)
        for spec in rules:
            unknown = set(spec) - {"verb", "resource", "sequence", "fraction", "fault"}
            if unknown:
                raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
            seq = spec.get("sequence")
            faults.add(
                verb=spec.get("verb", "*"),
                resource=spec.get("resource", "*"),
                sequence=[as_fault(f) for f in seq] if seq is not None else None,
                fraction=spec.get("fraction"),
                fault=as_fault(spec.get("fault")),
            )
        return faults
