"""The `allocation` annotation on each consortium namespace: the plan for that team, as JSON.

Labels carry the numbers `kubectl get ns -L` shows; this annotation carries the rest (per-model
quota, target, allocation, what cannot be held and why, a pending round, the next change) for
`gpu-scheduler status` and for people. Keys are sorted and separators compact, so an unchanged
plan gives identical bytes and no write.
"""

from __future__ import annotations

import json

import msgspec


class NextChange(msgspec.Struct, frozen=True):
    at: str
    what: str


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    consortium: str
    status: str
    stage: str | None = None
    quota: dict[str, int] = {}
    target: dict[str, int] = {}
    allocated: dict[str, int] = {}
    shortfall: dict[str, int] = {}  # target not placed yet (nodes still draining from another team)
    short: dict[str, int] = {}  # quota no plan can give now (per model, or "units")
    short_reason: str | None = None
    pending_stage: str | None = None  # a started round not decided yet (`stage` stays in force)
    nodes: int = 0
    draining_nodes: int = 0
    next_change: NextChange | None = None
    # a programme of several clusters: GPUs held in each (cluster -> model -> GPUs), and why they
    # are split when they are; absent from the JSON otherwise
    clusters: dict[str, dict[str, int]] | None = None
    split_reason: str | None = None


_OMITTED_WHEN_NONE = ("clusters", "split_reason")  # a programme of one cluster writes what it always wrote

_DECODER = msgspec.json.Decoder(Allocation)


def encode(allocation: Allocation) -> str:
    doc = msgspec.to_builtins(allocation)
    for key in _OMITTED_WHEN_NONE:
        if doc[key] is None:
            del doc[key]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def decode(text: str) -> Allocation:
    """Raises ValueError on text that is not an allocation annotation (someone edited it)."""
    try:
        return _DECODER.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(f"not an allocation annotation: {err}") from None
