"""The ResourceQuota gpu-scheduler keeps in each consortium namespace: one object, one field.

`requests.nvidia.com/gpu` is the number of GPUs on the team's assigned, non-draining nodes, so
the API server refuses pods beyond what the team holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.wire import MANAGED_BY

NAME = "gpu-scheduler"
GPU_RESOURCE = "nvidia.com/gpu"
HARD = f"requests.{GPU_RESOURCE}"


def encode(namespace: str, gpus: int | str) -> dict[str, Any]:
    """The whole object, to create it."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"hard": {HARD: str(gpus)}},
    }


def encode_patch(gpus: int | str) -> dict[str, Any]:
    """A merge patch setting the GPU limit and nothing else."""
    return {"spec": {"hard": {HARD: str(gpus)}}}


def decode_hard(hard: Mapping[str, Any]) -> str | None:
    """The GPU limit from a ResourceQuota's `spec.hard` (or a patch's), as the API server spells it."""
    value = hard.get(HARD)
    return None if value is None else str(value)


def decode(obj: Mapping[str, Any]) -> str | None:
    """The GPU limit of a ResourceQuota object or patch body; None when it sets none."""
    spec = obj.get("spec") or {}
    return decode_hard(spec.get("hard") or {})
