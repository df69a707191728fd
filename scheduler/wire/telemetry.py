"""The telemetry annotation: what a node agent tells the controller (docs/telemetry.md).

One typed model shared by both ends: the agent encodes it, the controller's snapshot decoder reads
it. Extra keys are allowed (older controllers ignore what newer agents add). The JSON Schema in
`telemetry.schema.json` is generated from these types (`python -m scheduler.wire.telemetry`)
and a test keeps the two equal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from scheduler.wire import timestamps

VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("telemetry.schema.json")


class GpuReport(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    uuid: str
    name: str = ""
    healthy: bool
    reason: str = ""  # why unhealthy (e.g. "xid-79", "ecc-dbe", "lost"); "" when healthy
    utilization: float | None = None  # 0..1, averaged over the last interval; None: not supported
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


class TelemetryReport(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    timestamp: datetime  # UTC, when the agent read NVML
    driver_version: str = ""
    total_gpus: int
    healthy_gpus: int
    gpus: list[GpuReport] = []
    error: str = ""  # NVML could not be read at all (e.g. "driver-not-loaded")

    @property
    def utilization(self) -> float | None:
        """Mean utilisation of the healthy GPUs that report one (what 'idle' means to reclaim)."""
        values = [g.utilization for g in self.gpus if g.healthy and g.utilization is not None]
        return sum(values) / len(values) if values else None


def _stamp(obj: object) -> str:
    """datetime subclasses (freezegun's FakeDatetime in tests) are encoded like datetimes."""
    if isinstance(obj, datetime):
        return timestamps.encode_utc(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


# built once, at import: msgspec resolves the types then (a decoder first built while a test
# has frozen time would otherwise cache freezegun's datetime class for the whole process)
_ENCODER = msgspec.json.Encoder(enc_hook=_stamp)
_DECODER = msgspec.json.Decoder(TelemetryReport)


def encode(report: TelemetryReport) -> str:
    """Compact, deterministic JSON for the annotation (keys in declaration order)."""
    return _ENCODER.encode(report).decode()


def decode(text: str) -> TelemetryReport:
    """Parse an annotation; raises msgspec.ValidationError/DecodeError on a malformed one."""
    report = _DECODER.decode(text)
    if report.timestamp.tzinfo is None:
        raise msgspec.ValidationError("timestamp has no timezone")
    return report


def utc_now_stamp(at: datetime) -> datetime:
    """Second precision, UTC: the annotation changes only when something worth saying does."""
    return at.astimezone(UTC).replace(microsecond=0)


def json_schema() -> dict[str, Any]:
    schema = msgspec.json.schema(TelemetryReport)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gpu-scheduler telemetry annotation"
    return schema


if __name__ == "__main__":  # regenerate the committed schema
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
