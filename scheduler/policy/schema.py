"""The policy documents as pydantic models: what explains a refused document and what
`gpu-scheduler schema` prints, exactly as docs/policy.md documents them.

A policy is read with the runtime model (models.py: msgspec structs, which build and validate in
microseconds and load nothing heavy); only a document it refuses is validated again here, for
pydantic's messages, every problem of the document at once with its path. The two accept and
refuse the same documents, with equal values (tests/policy/test_model_agreement.py).

Strict: unknown keys are errors (a typo must never be silently ignored). Cross-document checks
(unknown names, overlapping stages, impossible quotas) live in `crosscheck.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)

from scheduler.policy.errors import PolicyIssue
from scheduler.policy.limits import MAX_GPUS
from scheduler.policy.models import WindDownMode, read_eligible, units_or_models
from scheduler.policy.types import (
    DEFAULT_TIMEZONE,
    DNS1123_LABEL,
    DURATION_PATTERN,
    GPU_MODEL_NAME,
    check_zone,
    format_duration,
    parse_duration,
    parse_instant,
)
from scheduler.policy.yamlmarks import Document, dotted


def _instant_in_context_zone(value: Any, info: ValidationInfo) -> datetime:
    # `info` must be a required parameter: pydantic passes ValidationInfo (and so the programme's
    # timezone, in the validation context) only to validators whose second positional parameter
    # has no default.
    return parse_instant(value, (info.context or {}).get("timezone"))


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "15m", "2h", "14d"]}),
]

Instant = Annotated[
    datetime,
    BeforeValidator(_instant_in_context_zone),
    PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "description": "date or datetime; naive values are in the programme's timezone",
            "examples": ["2026-01-15", "2026-01-15T00:00:00+09:00"],
        }
    ),
]

Name = Annotated[str, StringConstraints(pattern=DNS1123_LABEL, max_length=63)]

TimeZoneName = Annotated[
    str, BeforeValidator(check_zone), WithJsonSchema({"type": "string", "examples": ["Asia/Seoul"]})
]

# Counts are integers written as integers: `true`, "1024" or 1024.0 are refused, not converted
# (YAML 1.1 once read `yes` as 1), and bounded so that no count can exhaust memory downstream.
Count = Annotated[StrictInt, Field(ge=0, le=MAX_GPUS)]
PositiveCount = Annotated[StrictInt, Field(gt=0, le=MAX_GPUS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(_Strict):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WindDown(_Strict):
    """How an eliminated consortium hands its GPUs back."""

    gracePeriod: Duration = Field(
        default=timedelta(days=14), description="time during which the team keeps part of its quota"
    )
    mode: WindDownMode = Field(
        default=WindDownMode.step, description="hold: whole quota; step: keepPercent of it; linear: shrinking to 0"
    )
    keepPercent: Annotated[float, Field(strict=True, ge=0, le=100)] = Field(
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
    keepPercent: Annotated[float, Field(strict=True, ge=0, le=100)] | None = None
    drainTimeout: Duration | None = None


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


class Consortium(_Strict):
    name: Name
    displayName: str | None = None
    namespaces: list[Name] = Field(default_factory=list)


GpuModelName = Annotated[str, StringConstraints(pattern=GPU_MODEL_NAME)]


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


Quota = Annotated[dict[str, Count], AfterValidator(units_or_models)]


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
    eligible: Annotated[list[Eligibility] | None, BeforeValidator(read_eligible), WithJsonSchema(_ELIGIBLE_SCHEMA)]
    quotas: dict[str, Quota] = Field(
        default_factory=dict, description="GPUs per model, or `units` (any model, by equivalence)"
    )
    windDown: WindDownOverride | None = None


class Stage(_Strict):
    apiVersion: Literal["gpu-scheduler.sovereign-ai.kr/v1"]
    kind: Literal["Stage"]
    metadata: Metadata
    spec: StageSpec


KINDS: dict[str, type[BaseModel]] = {"Program": Program, "Stage": Stage}


def explain(kind: str, doc: Document, data: Any, zone: ZoneInfo) -> list[PolicyIssue]:
    """Why the runtime model refused a document: every problem pydantic finds in it, as
    `file:line: field.path: message` (empty should pydantic accept it)."""
    model = KINDS[kind]
    explained: list[PolicyIssue] = []
    if kind == "Program":
        # as the Program's timezone is only known once it validates: first in the default
        if _validate(model, doc, data, {"timezone": DEFAULT_TIMEZONE}, explained) is None or zone == DEFAULT_TIMEZONE:
            return explained
    _validate(model, doc, data, {"timezone": zone}, explained)
    return explained


_FRIENDLY = {
    "extra_forbidden": "unknown field (check the spelling; unknown keys are errors, not ignored)",
    "missing": "required field is missing",
}


def _validate(
    model: type[BaseModel], doc: Document, data: Any, context: dict[str, Any], issues: list[PolicyIssue]
) -> BaseModel | None:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as err:
        for e in err.errors(include_url=False):
            loc = tuple(e["loc"])
            message = _FRIENDLY.get(e["type"]) or e["msg"]
            if e["type"] == "string_pattern_mismatch" and "a-z0-9" in str(e.get("ctx", {}).get("pattern", "")):
                message = (
                    f"{e['input']!r} is not a DNS-1123 label: use lower-case letters, digits and '-', "
                    "starting and ending with a letter or digit"
                )
            elif e["type"] == "string_too_long":
                message = f"{e['input']!r} is longer than 63 characters"
            elif e["type"] in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
                message = f"{e['input']!r} is out of range: {e['msg'][0].lower()}{e['msg'][1:]}"
            elif e["type"] in ("value_error", "assertion_error"):
                message = e["msg"].removeprefix("Value error, ")
            elif e["type"] == "literal_error" and loc and loc[-1] == "kind":
                message = e["msg"]
            if e["type"] == "missing":
                message = f"required field {loc[-1]!r} is missing"
                line = doc.line_of(loc[:-1], key=True)
            else:
                line = doc.line_of(loc, key=True)  # a key's line, not the line where its block value starts
            issues.append(PolicyIssue(doc.file, line, dotted(loc), message))
        return None
