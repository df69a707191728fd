"""Small builders shared by the telemetry tests: a clock the test moves, and fake NVML files."""

from __future__ import annotations

from typing import Any


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spec(*gpus: dict[str, Any], events: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    """A fake NVML file whose GPUs have only an identity unless the test gives readings."""
    listed = [{"index": i, "uuid": f"GPU-{i:04d}", "name": "NVIDIA H200", **g} for i, g in enumerate(gpus)]
    return {"driver_version": "580.65.06", "gpus": listed, "events": events or [], **top}
