"""Pydantic models of the policy documents, exactly as docs/policy.md documents them.

Strict: unknown keys are errors (a typo must never be silently ignored). Cross-document checks
(unknown names, overlapping stages, impossible quotas) live in `crosscheck.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from scheduler.policy.limits import MAX_GPUS
from scheduler.policy.types import Duration, Instant, Name, TimeZoneName

# Counts are integers written as integers: `true`, "1024" or 1024.0 are refused, not converted
# (YAML 1.1 once read `yes` as 1), and bounded so that no count can exhaust memory downstream.
Count = Annotated[StrictInt, Field(ge=0, le=MAX_GPUS)]
PositiveCount = Annotated[StrictInt, Field(gt=0, le=MAX_GPUS)]

API_VERSION = "gpu-scheduler.sovereign-ai.kr/v1"
UNITS = "units"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Strict):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WindDownMode(str, Enum):  # noqa: UP042 - str() of a member stays "WindDownMode.x" in messages
    hold = "hold"
    step = "step"
    linear = "linear"


class WindDown(_Strict):
    """How an eliminated consortium hands its GPUs back."""

    gracePeriod: Duration = Field(
        default=timedelta(days=14), description="time during which the team keeps part of its quota"
    )
    mode: WindDownMode = Field(
        default=WindDownMode.step, description="hold: whole quota; step: keepPercent of it; linear: shrinking to 0"
    )
    keepPercent: Annotated[float, Field(ge=0, le=100)] = Field(
        default=25, description="share of the quota kept during the grace period (mode step)"
    )
    drainTimeout: Duration = Field(
        default=timedelta(hours=2), description="how long a node's GPU pods may run after it starts draining"
    )


class Telemetry(_Strict):
    """How far the controller trusts node agents' telemetry (extension; see docs/telemetry.md)."""

    staleAfter: Duration = Field(
        default=timedelta(minutes=15),
        description="telemetry older than this is ignored (never read as zero GPUs); 3 agent heartbeats by default",
    )


class WindDownOverride(_Strict):
    """A stage's override: only the fields it names replace the programme's defaults."""

    gracePeriod: Duration | None = None
    mode: WindDownMode | None = None
    keepPercent: Annotated[float, Field(ge=0, le=100)] | None = None
    drainTimeout: Duration | None = None

    def over(self, base: WindDown) -> WindDown:
        changes = {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}
        return base.model_copy(update=changes)


class GpuModel(_Strict):
    units: PositiveCount = Field(description="equivalence units of one GPU of this model (1 B200 = 2 H100)")


class PoolSize(_Strict):
    """Planning hint (extension): the size a pool is built to. Sizes the built-in simulated
    cluster and lets validation reject a quota bigger than every pool of its model together."""

    nodes: PositiveCount
    gpusPerNode: PositiveCount = 8


class Cluster(_Strict):
    """A Kubernetes cluster that holds some of the programme's pools: one provider's API server.
    A job cannot span two of them, so planning keeps each team's GPUs of a model in one where it
    can (docs/planning.md, Clusters)."""

    name: Name = Field(
        description="the kubeconfig context of this name reaches it, unless --cluster-context says otherwise"
    )
    displayName: str | None = None
    provider: str | None = Field(default=None, description="who runs it (e.g. NHN Cloud)")
    region: str | None = None


class Pool(_Strict):
    name: Name
    gpuModel: str
    cluster: Name | None = Field(
        default=None, description="the cluster its nodes are in; required when spec.clusters lists several"
    )
    nodeSelector: dict[str, str] = Field(min_length=1)
    availableFrom: Instant | None = None
    availableUntil: Instant | None = Field(default=None, description="lease end: nodes are drained before this instant")
    topologyKey: str | None = None
    size: PoolSize | None = None

    def available(self, at: datetime) -> bool:
        return (self.availableFrom is None or self.availableFrom <= at) and (
            self.availableUntil is None or at < self.availableUntil
        )


class Consortium(_Strict):
    name: Name
    displayName: str | None = None
    namespaces: list[Name] = Field(default_factory=list)


GpuModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,40}[A-Za-z0-9])?$")]


class ProgramSpec(_Strict):
    timezone: TimeZoneName = "Asia/Seoul"
    gpuModels: dict[GpuModelName, GpuModel] = Field(
        min_length=1, description="model names end up in label keys (quota-<model>)"
    )
    clusters: list[Cluster] = Field(
        default_factory=list, description="the Kubernetes clusters the pools are in (none: one, the daemon's own)"
    )
    pools: list[Pool] = Field(default_factory=list)
    consortia: list[Consortium] = Field(default_factory=list)
    windDown: WindDown = Field(default_factory=WindDown)
    telemetry: Telemetry = Field(default_factory=Telemetry)


class Program(_Strict):
    apiVersion: Literal["gpu-scheduler.sovereign-ai.kr/v1"]
    kind: Literal["Program"]
    metadata: Metadata
    spec: ProgramSpec


class Eligibility(_Strict):
    consortium: Name
    from_: Instant | None = Field(
        default=None, alias="from", description="eligible from this instant (mid-stage additions)"
    )


def _units_or_models(quota: dict[str, int]) -> dict[str, int]:
    if UNITS in quota and len(quota) > 1:
        raise ValueError("give either `units` or GPUs per model, not both")
    return quota


Quota = Annotated[dict[str, Count], AfterValidator(_units_or_models)]


def _read_eligible(value: Any) -> Any:
    """`pending` becomes None; a bare name becomes {consortium: name} (one shape to validate)."""
    if value == "pending":
        return None
    if value is None:
        raise ValueError("list the eligible consortia, or write the word `pending` while the round is undecided")
    if isinstance(value, list):
        return [{"consortium": item} if isinstance(item, str) else item for item in value]
    return value


_ELIGIBLE_SCHEMA = {
    "description": "the consortia funded in this stage, or `pending` while the round is undecided",
    "anyOf": [
        {"const": "pending"},
        {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                    {
                        "type": "object",
                        "properties": {"consortium": {"type": "string"}, "from": {"type": "string"}},
                        "required": ["consortium"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
    ],
}


class StageSpec(_Strict):
    start: Instant
    eligible: Annotated[list[Eligibility] | None, BeforeValidator(_read_eligible), WithJsonSchema(_ELIGIBLE_SCHEMA)]
    quotas: dict[str, Quota] = Field(
        default_factory=dict, description="GPUs per model, or `units` (any model, by equivalence)"
    )
    windDown: WindDownOverride | None = None

    @property
    def pending(self) -> bool:
        """The round is undecided: the last decided stage stays in force."""
        return self.eligible is None

    def eligibility(self) -> list[Eligibility]:
        return list(self.eligible or [])


class Stage(_Strict):
    apiVersion: Literal["gpu-scheduler.sovereign-ai.kr/v1"]
    kind: Literal["Stage"]
    metadata: Metadata
    spec: StageSpec


KINDS: dict[str, type[BaseModel]] = {"Program": Program, "Stage": Stage}
