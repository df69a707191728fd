"""The policy documents as the programme runs on them: frozen msgspec structs, exactly the fields
and rules docs/policy.md documents.

Every command and the daemon read a policy through these: they load with msgspec (already there
to read clusters) and validate a real policy in well under a millisecond, where building and
running the pydantic models took a tenth of a second of every command's start. A document they
refuse is validated again by the pydantic models of schema.py, whose messages name every problem
with its path; both accept and refuse the same documents, with equal values
(tests/policy/test_model_agreement.py).

Strict: unknown keys are errors (a typo must never be silently ignored), counts are integers
written as integers (`true`, "1024" or 1024.0 are refused, not converted; YAML 1.1 once read `yes`
as 1), and bounded so that no count can exhaust memory downstream. Cross-document checks (unknown
names, overlapping stages, impossible quotas) live in `crosscheck.py`.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from scheduler.policy.limits import MAX_GPUS
from scheduler.policy.types import (
    DNS1123_LABEL,
    GPU_MODEL_NAME,
    check_zone,
    parse_duration,
    parse_instant,
    whole_string,
)

API_VERSION = "gpu-scheduler.sovereign-ai.kr/v1"
UNITS = "units"

Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_GPUS)]
PositiveCount = Annotated[int, msgspec.Meta(gt=0, le=MAX_GPUS)]
Name = Annotated[str, msgspec.Meta(pattern=whole_string(DNS1123_LABEL), max_length=63)]
GpuModelName = Annotated[str, msgspec.Meta(pattern=whole_string(GPU_MODEL_NAME))]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A policy object: immutable, and no key it does not know."""

    @classmethod
    def from_document(cls, data: Any) -> Any:
        """The document's mapping as this struct's fields read it (the identity, unless a field
        has a shorthand: see StageSpec)."""
        return data


class Metadata(_Strict, frozen=True):
    name: Name
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class WindDownMode(str, Enum):  # noqa: UP042 - str() of a member stays "WindDownMode.x" in messages
    hold = "hold"
    step = "step"
    linear = "linear"


class WindDown(_Strict, frozen=True):
    """How an eliminated consortium hands its GPUs back."""

    gracePeriod: timedelta = timedelta(days=14)  # the team keeps part of its quota meanwhile
    mode: WindDownMode = WindDownMode.step  # hold: whole quota; step: keepPercent of it; linear: down to 0
    keepPercent: Percent = 25  # share of the quota kept during the grace period (mode step)
    drainTimeout: timedelta = timedelta(hours=2)  # how long a node's GPU pods may run once it drains


class Telemetry(_Strict, frozen=True):
    """How far the controller trusts node agents' telemetry (docs/telemetry.md)."""

    staleAfter: timedelta = timedelta(minutes=15)  # older telemetry is ignored, never read as 0 GPUs


class WindDownOverride(_Strict, frozen=True):
    """A stage's override: only the fields it names replace the programme's defaults."""

    gracePeriod: timedelta | None = None
    mode: WindDownMode | None = None
    keepPercent: Percent | None = None
    drainTimeout: timedelta | None = None

    def over(self, base: WindDown) -> WindDown:
        changes = {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not None}
        return msgspec.structs.replace(base, **changes)


class GpuModel(_Strict, frozen=True):
    units: PositiveCount  # equivalence units of one GPU of this model (1 B200 = 2 H100)


class PoolSize(_Strict, frozen=True):
    """Planning hint: the size a pool is built to. Sizes the built-in simulated cluster and lets
    validation reject a quota bigger than every pool of its model together."""

    nodes: PositiveCount
    gpusPerNode: PositiveCount = 8


class Cluster(_Strict, frozen=True):
    """A Kubernetes cluster that holds some of the programme's pools: one provider's API server.
    A job cannot span two of them, so planning keeps each team's GPUs of a model in one where it
    can (docs/planning.md, Clusters)."""

    name: Name  # the kubeconfig context of this name reaches it, unless --cluster-context says otherwise
    displayName: str | None = None
    provider: str | None = None
    region: str | None = None


class Pool(_Strict, frozen=True, kw_only=True):
    name: Name
    gpuModel: str
    cluster: Name | None = None  # required when spec.clusters lists several
    nodeSelector: Annotated[dict[str, str], msgspec.Meta(min_length=1)]
    availableFrom: datetime | None = None
    availableUntil: datetime | None = None  # lease end: nodes are drained before this instant
    topologyKey: str | None = None
    size: PoolSize | None = None

    def available(self, at: datetime) -> bool:
        return (self.availableFrom is None or self.availableFrom <= at) and (
            self.availableUntil is None or at < self.availableUntil
        )


class Consortium(_Strict, frozen=True):
    name: Name
    displayName: str | None = None
    namespaces: list[Name] = []


class ProgramSpec(_Strict, frozen=True, kw_only=True):
    timezone: str = "Asia/Seoul"
    gpuModels: Annotated[dict[GpuModelName, GpuModel], msgspec.Meta(min_length=1)]  # names end up in label keys
    clusters: list[Cluster] = []  # none: one, the daemon's own
    pools: list[Pool] = []
    consortia: list[Consortium] = []
    windDown: WindDown = msgspec.field(default_factory=WindDown)
    telemetry: Telemetry = msgspec.field(default_factory=Telemetry)

    def __post_init__(self) -> None:
        check_zone(self.timezone)


class Program(_Strict, frozen=True):
    apiVersion: Literal["gpu-scheduler.sovereign-ai.kr/v1"]
    kind: Literal["Program"]
    metadata: Metadata
    spec: ProgramSpec


class Eligibility(_Strict, frozen=True):
    consortium: Name
    from_: datetime | None = msgspec.field(default=None, name="from")  # eligible from (mid-stage additions)


def units_or_models(quota: dict[str, int]) -> dict[str, int]:
    if UNITS in quota and len(quota) > 1:
        raise ValueError("give either `units` or GPUs per model, not both")
    return quota


def read_eligible(value: Any) -> Any:
    """`pending` becomes None; a bare name becomes {consortium: name} (one shape to validate)."""
    if value == "pending":
        return None
    if value is None:
        raise ValueError("list the eligible consortia, or write the word `pending` while the round is undecided")
    if isinstance(value, list):
        return [{"consortium": item} if isinstance(item, str) else item for item in value]
    return value


class StageSpec(_Strict, frozen=True):
    start: datetime
    eligible: list[Eligibility] | None  # None: `pending`, the round is undecided
    quotas: dict[str, dict[str, Count]] = {}  # GPUs per model, or `units` (any model, by equivalence)
    windDown: WindDownOverride | None = None

    @classmethod
    def from_document(cls, data: Any) -> Any:
        if isinstance(data, dict) and "eligible" in data:
            return {**data, "eligible": read_eligible(data["eligible"])}
        return data

    def __post_init__(self) -> None:
        for quota in self.quotas.values():
            units_or_models(quota)

    @property
    def pending(self) -> bool:
        """The round is undecided: the last decided stage stays in force."""
        return self.eligible is None

    def eligibility(self) -> list[Eligibility]:
        return list(self.eligible or [])


class Stage(_Strict, frozen=True):
    apiVersion: Literal["gpu-scheduler.sovereign-ai.kr/v1"]
    kind: Literal["Stage"]
    metadata: Metadata
    spec: StageSpec


KINDS: dict[str, type[Program] | type[Stage]] = {"Program": Program, "Stage": Stage}

_Doc = TypeVar("_Doc", Program, Stage)


class Refused(ValueError):
    """The runtime model refuses the document; schema.py says why, field by field."""


def read(kind: type[_Doc], data: Any, zone: ZoneInfo) -> _Doc:
    """A document as `kind`, its naive instants in `zone`; Refused if it is not one."""
    try:
        return msgspec.convert(_Scalars(zone).of(kind, data), kind, strict=True)
    except (msgspec.ValidationError, ValueError, TypeError) as err:
        raise Refused(str(err)) from None


class _Scalars:
    """Reads the policy language's own scalars before msgspec checks the document: durations
    (`14d`) and instants (dates, naive times in the programme's timezone) become timedelta and
    aware datetime, and shorthands are expanded, wherever the model's types say they go. The
    document itself is not changed (a refused one is validated again, as it was written)."""

    _PLAIN: ClassVar[frozenset[Any]] = frozenset({str, int, float, bool, type(None)})

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def of(self, tp: Any, value: Any) -> Any:
        tp = _bare(tp)
        if tp is _EXACT[0]:
            return _exact(parse_instant(value, self.zone))
        if tp is _EXACT[1]:
            return parse_duration(value)
        if tp in self._PLAIN:
            return value
        if isinstance(tp, type) and issubclass(tp, _Strict):
            value = tp.from_document(value)
            if not isinstance(value, dict):
                return value
            fields = _fields(tp)
            return {k: self.of(fields[k], v) if k in fields else v for k, v in value.items()}
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None:
                return value
            (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
            return self.of(inner, value)
        if origin is list and isinstance(value, list):
            (inner,) = typing.get_args(tp)
            return [self.of(inner, v) for v in value]
        if origin is dict and isinstance(value, dict):
            _, inner = typing.get_args(tp)
            return {k: self.of(inner, v) for k, v in value.items()}
        return value


# the classes themselves, held where no test clock (freezegun) swaps them for its subclasses
_EXACT: tuple[type[datetime], type[timedelta]] = (datetime, timedelta)


def _exact(instant: datetime) -> datetime:
    """`instant` as a datetime itself: msgspec takes no subclass (a test clock's, or a library's)."""
    if type(instant) is _EXACT[0]:
        return instant
    return _EXACT[0](
        instant.year,
        instant.month,
        instant.day,
        instant.hour,
        instant.minute,
        instant.second,
        instant.microsecond,
        instant.tzinfo,
        fold=instant.fold,
    )


def _bare(tp: Any) -> Any:
    """The type under Annotated[...] (its constraints are msgspec's to check)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


_FIELDS: dict[type, dict[str, Any]] = {}


def _fields(struct: type[_Strict]) -> dict[str, Any]:
    """A struct's fields by the name a document writes them, with their types."""
    found = _FIELDS.get(struct)
    if found is None:
        found = _FIELDS[struct] = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
    return found
