"""A small, faithful fake of the ``pynvml`` module, driven by a JSON file (docs/telemetry.md).

Why it exists: the NVML reader takes a pynvml-like object ``nvml`` and calls ``nvml.nvmlInit()``,
``nvml.nvmlDeviceGetMemoryInfo(h)`` and so on. In production that object is the ``pynvml`` module;
in tests, demos and ``run --simulate`` there is no GPU, so it is a :class:`FakeNvml`. The fake
returns the real pynvml ctypes structs and raises the real pynvml exception classes (built the way
pynvml builds them, ``pynvml.NVMLError(code)``), so reader code proven against the fake holds
against the driver.

Faked calls: nvmlInit, nvmlShutdown, nvmlSystemGetDriverVersion, nvmlDeviceGetCount,
nvmlDeviceGetHandleByIndex, nvmlDeviceGetIndex, nvmlDeviceGetUUID, nvmlDeviceGetName,
nvmlDeviceGetPciInfo, nvmlDeviceGetMemoryInfo, nvmlDeviceGetUtilizationRates,
nvmlDeviceGetTemperature(V), nvmlDeviceGetPowerUsage, nvmlDeviceGetTotalEccErrors,
nvmlDeviceGetRemappedRows, nvmlDeviceGetRetiredPagesPendingStatus, nvmlEventSetCreate,
nvmlDeviceRegisterEvents, nvmlEventSetWait(_v2), nvmlEventSetFree.

What it mirrors from pynvml (nvidia-ml-py 13.x), on purpose:

- Device handles are real ``pynvml.c_nvmlDevice_t`` pointers, and like pynvml every call returns a
  *fresh* pointer object: two handles for the same GPU are neither ``is`` nor ``==``, and ctypes
  pointers are unhashable, so they cannot be dict keys. ``c_nvmlEventData_t.device`` is a fresh
  pointer on every attribute access. Identify a handle by ``nvmlDeviceGetIndex(h)`` or by its
  address, ``ctypes.addressof(h.contents)``; both work on the fake and on the driver.
- Strings come back as ``str`` (pynvml decodes them), ``nvmlDeviceGetPciInfo`` returns
  ``pynvml.nvmlPciInfo_t`` (the v3 struct) whose ``busId`` reads as ``str`` in NVML's own form,
  ``"00000000:18:00.0"`` (8-digit domain, upper-case hex), with ``busIdLegacy`` ``"0000:18:00.0"``.
- ``nvmlDeviceGetRemappedRows`` returns ``(corrRows, uncRows, isPending, failureOccurred)``, four
  ints (0/1 for the flags), as pynvml does.
- ``nvmlInit``/``nvmlShutdown`` are reference counted like NVML; calls outside a session raise
  ``NVMLError_Uninitialized``; ``nvmlShutdown`` beyond the count is a no-op (NVML's backwards
  compatibility rule), but before any successful ``nvmlInit`` it raises ``Uninitialized``.
- A GPU that is lost raises ``NVMLError_GpuIsLost`` from ``nvmlDeviceGetHandleByIndex`` (the
  nvidia-smi "Unable to determine the device handle for GPU ...: GPU is lost" case) and from every
  call that takes its handle; ``nvmlDeviceGetCount`` still counts it.
- Pynvml functions the fake does not implement raise ``AttributeError`` naming them, rather than
  pretending; pynvml constants and ``NVMLError*`` classes are all reachable on the fake.

The file (JSON; extra keys are allowed everywhere except inside a ``set`` event)::

    {"driver_version": "580.65.06",
     "init_error": "driver_not_loaded",            # optional: nvmlInit raises (see below)
     "gpus": [{"index": 0, "uuid": "GPU-0000", "name": "NVIDIA H200",
               "pci_bus_id": "0000:18:00.0",
               "memory_total_bytes": 150754820096, "memory_used_bytes": 120000000000,
               "utilization_gpu": 93, "utilization_memory": 41, "temperature_c": 61,
               "power_mw": 640000,
               "ecc_volatile_sbe": 0, "ecc_volatile_dbe": 0,
               "ecc_aggregate_sbe": 0, "ecc_aggregate_dbe": 0,          # extension
               "remapped_rows_correctable": 0, "remapped_rows_uncorrectable": 0,  # extension
               "remapped_rows_pending": false, "remapped_rows_failure": false,
               "retired_pages_pending": false,                         # extension, pre-Ampere
               "lost": false}],
     "events": [{"after_s": 0,  "gpu": 3, "xid": 79},
                {"after_s": 5,  "gpu": 0, "timeout": true},
                {"after_s": 60, "gpu": 1, "set": {"ecc_volatile_dbe": 1, "lost": true}},
                {"after_s": 90, "reset": true}]}

Rules of the file:

- ``index``, ``uuid`` and ``name`` are required; indices are 0..n-1 as NVML numbers GPUs. Every
  reading is optional: an absent reading makes its call raise ``NVMLError_NotSupported`` (what
  NVML says when a GPU lacks the feature, e.g. retired pages on Ampere and later, remapped rows
  before Ampere). A call that returns several readings (memory, utilisation, remapped rows) is
  supported when any of its keys is present, and the absent ones read 0 (memory: needs
  ``memory_total_bytes``; free is total minus used).
- ``init_error``: ``"library_not_found"`` | ``"driver_not_loaded"`` | ``"lib_rm_version_mismatch"``
  makes every ``nvmlInit`` raise the matching ``NVMLError_*``; everything else then raises
  ``Uninitialized``, as pynvml does.
- ``events`` form one timeline; ``after_s`` counts seconds from the first successful ``nvmlInit``
  (the agent's start) on the fake's clock, and an event applies once the clock reaches it (ties
  keep file order). ``--once`` therefore sees the events due at 0. Kinds (exactly one key of):

  - ``xid``: an XID critical error on ``gpu``, delivered by ``nvmlEventSetWait_v2`` to every event
    set of the current session that registered that GPU for ``nvmlEventTypeXidCriticalError``
    (registering after the XID still receives it), in timeline order, once per set, as
    ``c_nvmlEventData_t(device, eventType, eventData=xid, gpuInstanceId=computeInstanceId=
    0xFFFFFFFF)``. XIDs that happen while the GPU is lost are dropped; an XID queued before the
    loss is still delivered. No event due: ``NVMLError_Timeout``. With an injected clock the wait
    never sleeps; with the default clock it sleeps at most ``timeoutms``.
  - ``set``: readings of ``gpu`` change from then on (only reading keys and ``lost``; ``null``
    removes a reading, so its call becomes "not supported").
  - ``timeout``: the next call that takes that GPU's handle raises ``NVMLError_Timeout``, once.
  - ``reset``: a GPU reset / driver reload. Volatile ECC counters go to 0, lost GPUs come back,
    pending row remaps and page retirements are applied (flags to false); aggregate counters,
    remap counts and remap failures persist (they live in the InfoROM). The agent's NVML session
    ends: every call raises ``NVMLError_Uninitialized`` until ``nvmlInit`` again, and event sets
    from before are gone (after re-init they raise ``NVMLError_InvalidArgument``; XIDs from before
    the reset are not delivered to new sets). Device handles keep their addresses, as NVML's are
    static per process. Why this choice: a real reset cannot happen under a live NVML client (the
    driver refuses while ``/dev/nvidia*`` is held; nvidia-smi -r requires no monitoring client,
    DCGM exporters release NVML to let it through), so an agent that outlives a reset has had
    its session torn down and must ``nvmlInit`` again. ``after_s`` keeps counting from the first
    ``nvmlInit``, so a reset never replays the timeline.

The JSON Schema ``fake_nvml.schema.json`` next to this module is exported from the models below
(``python -m scheduler.telemetry.fake_nvml > scheduler/telemetry/fake_nvml.schema.json``); the
models are what validates, and errors name the file and the JSON path of the bad field.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import pynvml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

__all__ = ["FakeNvml", "FakeNvmlFile", "FakeNvmlFileError", "json_schema"]

SCHEMA_PATH = Path(__file__).with_name("fake_nvml.schema.json")

# ---------------------------------------------------------------------------------------------
# The file, as pydantic models (one source of truth for validation and the JSON Schema)

_Count = Annotated[int, Field(ge=0)]
_Percent = Annotated[int, Field(ge=0, le=100)]
_BUS_ID = r"^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}):[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$"


class _Readings(BaseModel):
    """What NVML reads from a GPU; each absent key means "not supported" on that GPU."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow")

    memory_total_bytes: _Count | None = Field(None, description="nvmlDeviceGetMemoryInfo total")
    memory_used_bytes: _Count | None = Field(None, description="nvmlDeviceGetMemoryInfo used (0 if absent)")
    utilization_gpu: _Percent | None = Field(None, description="nvmlDeviceGetUtilizationRates gpu, percent")
    utilization_memory: _Percent | None = Field(None, description="nvmlDeviceGetUtilizationRates memory, percent")
    temperature_c: _Count | None = Field(None, description="nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU), degC")
    power_mw: _Count | None = Field(None, description="nvmlDeviceGetPowerUsage, milliwatts")
    ecc_volatile_sbe: _Count | None = Field(None, description="corrected errors since the driver loaded")
    ecc_volatile_dbe: _Count | None = Field(None, description="uncorrected errors since the driver loaded")
    ecc_aggregate_sbe: _Count | None = Field(None, description="corrected errors over the GPU's life")
    ecc_aggregate_dbe: _Count | None = Field(None, description="uncorrected errors over the GPU's life")
    remapped_rows_correctable: _Count | None = Field(None, description="nvmlDeviceGetRemappedRows corrRows (Ampere+)")
    remapped_rows_uncorrectable: _Count | None = Field(None, description="nvmlDeviceGetRemappedRows uncRows (Ampere+)")
    remapped_rows_pending: bool | None = Field(None, description="nvmlDeviceGetRemappedRows isPending (Ampere+)")
    remapped_rows_failure: bool | None = Field(None, description="nvmlDeviceGetRemappedRows failureOccurred (Ampere+)")
    retired_pages_pending: bool | None = Field(
        None, description="nvmlDeviceGetRetiredPagesPendingStatus (pre-Ampere only)"
    )


_READING_KEYS: tuple[str, ...] = tuple(_Readings.model_fields)


class GpuSpec(_Readings):
    """One GPU as NVML enumerates it, plus its readings at the agent's start."""

    index: _Count = Field(description="NVML index, 0..n-1")
    uuid: str = Field(min_length=1, max_length=95, description="nvmlDeviceGetUUID, e.g. GPU-5f3c...")
    name: str = Field(min_length=1, max_length=95, description="nvmlDeviceGetName, e.g. NVIDIA H200")
    pci_bus_id: str | None = Field(None, pattern=_BUS_ID, description="domain:bus:device.function")
    lost: bool = Field(False, description="fallen off the bus: every call on it raises GpuIsLost")


class SetReadings(_Readings):
    """The readings a ``set`` event may change; unknown keys are refused (a typo would be silent)."""

    model_config = ConfigDict(extra="forbid")

    lost: bool = Field(False, description="the GPU falls off the bus (true) or comes back (false)")


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="allow")

    after_s: float = Field(ge=0, description="seconds after the first nvmlInit")


class XidEvent(_Event):
    """An XID critical error, delivered through nvmlEventSetWait_v2."""

    gpu: _Count
    xid: _Count


class SetEvent(_Event):
    """Readings of one GPU change from then on."""

    gpu: _Count
    set: SetReadings


class TimeoutEvent(_Event):
    """The next call on the GPU raises NVMLError_Timeout, once."""

    gpu: _Count
    timeout: Literal[True]


class ResetEvent(_Event):
    """A GPU reset / driver reload: see the module docstring."""

    reset: Literal[True]


_EVENT_TAGS = {"xid": "xid event", "set": "set event", "timeout": "timeout event", "reset": "reset event"}


def _event_kind(value: Any) -> str | None:
    """Which kind of event this is: exactly one of the kind keys, else None (a clear error)."""
    kinds = [k for k in _EVENT_TAGS if isinstance(value, Mapping) and k in value]
    return _EVENT_TAGS[kinds[0]] if len(kinds) == 1 else None


Event = Annotated[
    Annotated[XidEvent, Tag("xid event")]
    | Annotated[SetEvent, Tag("set event")]
    | Annotated[TimeoutEvent, Tag("timeout event")]
    | Annotated[ResetEvent, Tag("reset event")],
    Discriminator(
        _event_kind,
        custom_error_type="event_kind",
        custom_error_message="an event needs exactly one of the keys 'xid', 'set', 'timeout' or 'reset'",
    ),
]


class FakeNvmlFile(BaseModel):
    """The fake NVML file (agent --nvml-fake FILE): the format of docs/telemetry.md, extended as documented in
    scheduler/telemetry/fake_nvml.py. Absent readings mean "not supported" on that GPU."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow", title="Fake NVML file")

    driver_version: str | None = Field(
        None, min_length=1, max_length=79, description="nvmlSystemGetDriverVersion (absent: not supported)"
    )
    init_error: Literal["library_not_found", "driver_not_loaded", "lib_rm_version_mismatch"] | None = Field(
        None, description="nvmlInit raises this NVML error"
    )
    gpus: list[GpuSpec]
    events: list[Event] = Field(default_factory=list, description="one timeline, after_s from the first nvmlInit")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, exported from the models (the committed schema file is this)."""
    schema = FakeNvmlFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


class FakeNvmlFileError(ValueError):
    """The fake NVML file is not valid; names the file and the JSON path of every bad field."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path}: {message}" for path, message in problems))


def _json_path(loc: tuple[int | str, ...]) -> str:
    tags = set(_EVENT_TAGS.values())
    path = "$"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in tags:
            path += f".{part}"
    return path


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in error.errors():
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key; a 'set' may change: {', '.join((*_READING_KEYS, 'lost'))}"
        elif err["type"] != "missing" and isinstance(err.get("input"), (str, int, float, bool, type(None))):
            message += f" (got {json.dumps(err['input'])})"
        problems.append((_json_path(err["loc"]), message))
    return problems


def _cross_check(spec: FakeNvmlFile) -> list[tuple[str, str]]:
    """What a per-field schema cannot say: dense unique indices, events naming real GPUs."""
    problems: list[tuple[str, str]] = []
    n = len(spec.gpus)
    seen_index: set[int] = set()
    seen_uuid: set[str] = set()
    for i, gpu in enumerate(spec.gpus):
        if gpu.index >= n or gpu.index in seen_index:
            problems.append(
                (f"$.gpus[{i}].index", f"indices must be 0..{n - 1}, each once, as NVML numbers GPUs (got {gpu.index})")
            )
        seen_index.add(gpu.index)
        if gpu.uuid in seen_uuid:
            problems.append((f"$.gpus[{i}].uuid", f"duplicate uuid {json.dumps(gpu.uuid)}"))
        seen_uuid.add(gpu.uuid)
        if gpu.memory_used_bytes is not None:
            if gpu.memory_total_bytes is None:
                problems.append((f"$.gpus[{i}].memory_used_bytes", "needs memory_total_bytes"))
            elif gpu.memory_used_bytes > gpu.memory_total_bytes:
                problems.append(
                    (f"$.gpus[{i}].memory_used_bytes", f"exceeds memory_total_bytes {gpu.memory_total_bytes}")
                )
    for k, event in enumerate(spec.events):
        gpu_index = getattr(event, "gpu", None)
        if gpu_index is not None and gpu_index >= n:
            problems.append((f"$.events[{k}].gpu", f"no GPU with index {gpu_index} (the file has 0..{n - 1})"))
    return problems


def _validate(data: Any, source: str) -> FakeNvmlFile:
    try:
        spec = data if isinstance(data, FakeNvmlFile) else FakeNvmlFile.model_validate(data)
    except ValidationError as error:
        raise FakeNvmlFileError(source, _problems(error)) from None
    problems = _cross_check(spec)
    if problems:
        raise FakeNvmlFileError(source, problems)
    return spec


# ---------------------------------------------------------------------------------------------
# The fake

_INIT_ERRORS = {
    "library_not_found": pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    "driver_not_loaded": pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    "lib_rm_version_mismatch": pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
}
_NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId when the event is not MIG-attributable


def _fail(code: int) -> NoReturn:
    """Raise exactly what pynvml raises for ``code``: ``NVMLError(code)`` maps to the subclass."""
    raise pynvml.NVMLError(code)


def _address(pointer: Any) -> int | None:
    if not isinstance(pointer, ctypes._Pointer):
        return None
    return ctypes.cast(pointer, ctypes.c_void_p).value


@dataclass
class _Gpu:
    spec: GpuSpec
    readings: dict[str, Any]
    lost: bool
    timeout_pending: bool = False
    struct: Any = field(default_factory=pynvml.struct_c_nvmlDevice_t)  # what handles point at

    def handle(self) -> Any:
        return ctypes.pointer(self.struct)


@dataclass
class _Xid:
    seq: int  # position on the timeline: delivery order
    gpu: int
    xid: int
    epoch: int  # resets seen before it happened


@dataclass
class _EventSet:
    struct: Any
    epoch: int
    masks: dict[int, int] = field(default_factory=dict)  # gpu index -> registered event types
    delivered: set[int] = field(default_factory=set)


class FakeNvml:
    """A pynvml-like object backed by a fake NVML file; pass it where the reader takes ``nvml``.

    ``clock`` returns seconds; ``None`` (the default) reads ``time.monotonic`` at each call and lets
    ``nvmlEventSetWait_v2`` really sleep (at most its timeout). An injected clock never sleeps: the
    test moves time. Attributes: ``spec`` (the validated :class:`FakeNvmlFile`), ``source`` (the
    file's name, used in errors). Thread-safe, like NVML: the agent may wait for events in one
    thread and read in another.
    """

    # The constants and exception classes the reader uses: pynvml's own objects. Any other pynvml
    # constant or NVMLError_* class is reachable too (see __getattr__).
    NVML_SUCCESS = pynvml.NVML_SUCCESS
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_MEMORY_ERROR_TYPE_CORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_AGGREGATE_ECC = pynvml.NVML_AGGREGATE_ECC
    NVML_FEATURE_DISABLED = pynvml.NVML_FEATURE_DISABLED
    NVML_FEATURE_ENABLED = pynvml.NVML_FEATURE_ENABLED
    nvmlEventTypeXidCriticalError = pynvml.nvmlEventTypeXidCriticalError
    nvmlEventTypeAll = pynvml.nvmlEventTypeAll
    NVMLError = pynvml.NVMLError
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVMLError_InvalidArgument = pynvml.NVMLError_InvalidArgument
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_LibRmVersionMismatch = pynvml.NVMLError_LibRmVersionMismatch
    NVMLError_Timeout = pynvml.NVMLError_Timeout
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVMLError_Unknown = pynvml.NVMLError_Unknown

    def __init__(
        self,
        spec: Mapping[str, Any] | FakeNvmlFile,
        *,
        clock: Callable[[], float] | None = None,
        source: str = "<fake nvml>",
    ) -> None:
        self.source = source
        self.spec = _validate(spec, source)
        self._clock = clock
        self._lock = threading.RLock()
        self._gpus = [self._gpu_state(g) for g in sorted(self.spec.gpus, key=lambda g: g.index)]
        self._by_address = {ctypes.addressof(g.struct): g for g in self._gpus}
        ordered = sorted(enumerate(self.spec.events), key=lambda pair: pair[1].after_s)
        self._timeline: list[tuple[int, Event]] = ordered  # (seq, event), stable in file order
        self._applied = 0
        self._t0: float | None = None  # clock at the first successful nvmlInit
        self._ever_initialized = False
        self._refcount = 0
        self._epoch = 0
        self._xids: list[_Xid] = []
        self._event_sets: dict[int, _EventSet] = {}

    @classmethod
    def from_file(cls, path: str | Path, *, clock: Callable[[], float] | None = None) -> FakeNvml:
        """Load and validate a fake NVML file; errors name the file and the JSON path."""
        source = str(path)
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise FakeNvmlFileError(
                source, [("$", f"not JSON: {error.msg} at line {error.lineno} column {error.colno}")]
            ) from None
        return cls(data, clock=clock, source=source)

    def __repr__(self) -> str:
        return f"FakeNvml({self.source!r}, gpus={len(self._gpus)})"

    def __getattr__(self, name: str) -> Any:
        """pynvml constants and error classes pass through; unfaked functions fail loudly."""
        if name.startswith(("NVML_", "NVMLError", "nvmlEventType", "nvmlFlag")) and hasattr(pynvml, name):
            return getattr(pynvml, name)
        if name.startswith("nvml") and callable(getattr(pynvml, name, None)):
            raise AttributeError(f"FakeNvml does not fake pynvml.{name}; add it to {__name__} if the reader needs it")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- session ------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        with self._lock:
            if self.spec.init_error is not None:
                _fail(_INIT_ERRORS[self.spec.init_error])
            if self._t0 is None:
                self._t0 = self._now()
            self._advance()
            self._refcount += 1
            self._ever_initialized = True

    def nvmlShutdown(self) -> None:
        with self._lock:
            self._advance()
            if not self._ever_initialized:
                _fail(pynvml.NVML_ERROR_UNINITIALIZED)
            if self._refcount > 0:
                self._refcount -= 1
                if self._refcount == 0:
                    self._event_sets.clear()

    def nvmlSystemGetDriverVersion(self) -> str:
        with self._lock:
            self._require_session()
            if self.spec.driver_version is None:
                _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return self.spec.driver_version

    # -- devices ------------------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        with self._lock:
            self._require_session()
            return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        with self._lock:
            self._require_session()
            if not isinstance(index, int) or not 0 <= index < len(self._gpus):
                _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            gpu = self._gpus[index]
            if gpu.lost:
                _fail(pynvml.NVML_ERROR_GPU_IS_LOST)
            return gpu.handle()

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        with self._lock:
            return self._device(handle).spec.index

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        with self._lock:
            return self._device(handle).spec.uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        with self._lock:
            return self._device(handle).spec.name

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        with self._lock:
            gpu = self._device(handle)
            if gpu.spec.pci_bus_id is None:
                _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
            domain_s, bus_s, rest = gpu.spec.pci_bus_id.split(":")
            device_s = rest.split(".")[0]
            domain, bus, device = int(domain_s, 16), int(bus_s, 16), int(device_s, 16)
            info = pynvml.nvmlPciInfo_t()
            info.domain, info.bus, info.device = domain, bus, device
            info.busId = f"{domain:08X}:{bus:02X}:{rest.upper()}"
            info.busIdLegacy = f"{domain:04X}:{bus:02X}:{rest.upper()}"
            return info

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        with self._lock:
            readings = self._device(handle).readings
            if "memory_total_bytes" not in readings:
                _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
            total, used = readings["memory_total_bytes"], readings.get("memory_used_bytes", 0)
            return pynvml.c_nvmlMemory_t(total=total, free=max(total - used, 0), used=used)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        with self._lock:
            gpu_pct, mem_pct = self._readings(handle, "utilization_gpu", "utilization_memory")
            return pynvml.c_nvmlUtilization_t(gpu=gpu_pct, memory=mem_pct)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        with self._lock:
            gpu = self._device(handle)
            if sensor != pynvml.NVML_TEMPERATURE_GPU:
                _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return int(self._reading(gpu, "temperature_c"))

    def nvmlDeviceGetTemperatureV(self, handle: Any, sensor: int, version: int = pynvml.nvmlTemperature_v1) -> int:
        """The successor of nvmlDeviceGetTemperature (deprecated in nvidia-ml-py 13, gone in CUDA 14)."""
        if version != pynvml.nvmlTemperature_v1:
            _fail(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return self.nvmlDeviceGetTemperature(handle, sensor)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        with self._lock:
            return int(self._reading(self._device(handle), "power_mw"))

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, errorType: int, counterType: int) -> int:
        with self._lock:
            gpu = self._device(handle)
            counter = {pynvml.NVML_VOLATILE_ECC: "volatile", pynvml.NVML_AGGREGATE_ECC: "aggregate"}.get(counterType)
            kind = {
                pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED: "sbe",
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "dbe",
            }.get(errorType)
            if counter is None or kind is None:
                _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return int(self._reading(gpu, f"ecc_{counter}_{kind}"))

    def nvmlDeviceGetRemappedRows(self, handle: Any) -> tuple[int, int, int, int]:
        with self._lock:
            values = self._readings(
                handle,
                "remapped_rows_correctable",
                "remapped_rows_uncorrectable",
                "remapped_rows_pending",
                "remapped_rows_failure",
            )
            corr, unc, pending, failure = (int(v) for v in values)
            return (corr, unc, pending, failure)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: Any) -> int:
        with self._lock:
            pending = self._reading(self._device(handle), "retired_pages_pending")
            status: int = pynvml.NVML_FEATURE_ENABLED if pending else pynvml.NVML_FEATURE_DISABLED
            return status

    # -- events -------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> Any:
        with self._lock:
            self._require_session()
            struct = pynvml.struct_c_nvmlEventSet_t()
            self._event_sets[ctypes.addressof(struct)] = _EventSet(struct=struct, epoch=self._epoch)
            return ctypes.pointer(struct)

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: Any) -> None:
        with self._lock:
            gpu = self._device(handle)
            event_set = self._event_set(eventSet)
            if not isinstance(eventTypes, int) or eventTypes & ~pynvml.nvmlEventTypeAll:
                _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            index = gpu.spec.index
            event_set.masks[index] = event_set.masks.get(index, 0) | eventTypes

    def nvmlEventSetWait_v2(self, eventSet: Any, timeoutms: int) -> Any:
        """The next due XID for this set, else NVMLError_Timeout (never sleeping on an injected clock)."""
        if not isinstance(timeoutms, int) or timeoutms < 0:
            _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        remaining = timeoutms / 1000
        while True:
            with self._lock:
                self._require_session()
                event_set = self._event_set(eventSet)
                data = self._next_xid(event_set)
                if data is not None:
                    return data
                step = self._sleep_step(remaining)
            if step <= 0:
                _fail(pynvml.NVML_ERROR_TIMEOUT)
            time.sleep(step)
            remaining -= step

    nvmlEventSetWait = nvmlEventSetWait_v2

    def nvmlEventSetFree(self, eventSet: Any) -> None:
        with self._lock:
            self._require_session()
            self._event_set(eventSet)
            del self._event_sets[_address(eventSet) or 0]

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _gpu_state(spec: GpuSpec) -> _Gpu:
        readings = {k: getattr(spec, k) for k in _READING_KEYS if getattr(spec, k) is not None}
        return _Gpu(spec=spec, readings=readings, lost=spec.lost)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else time.monotonic()

    def _advance(self) -> None:
        """Apply every timeline event whose time has come."""
        if self._t0 is None:
            return
        elapsed = self._now() - self._t0
        while self._applied < len(self._timeline) and self._timeline[self._applied][1].after_s <= elapsed:
            seq, event = self._timeline[self._applied]
            self._applied += 1
            self._apply(seq, event)

    def _apply(self, seq: int, event: _Event) -> None:
        if isinstance(event, XidEvent):
            if not self._gpus[event.gpu].lost:
                self._xids.append(_Xid(seq=seq, gpu=event.gpu, xid=event.xid, epoch=self._epoch))
        elif isinstance(event, SetEvent):
            gpu = self._gpus[event.gpu]
            for key in event.set.model_fields_set:
                value = getattr(event.set, key)
                if key == "lost":
                    gpu.lost = value
                elif value is None:
                    gpu.readings.pop(key, None)
                else:
                    gpu.readings[key] = value
        elif isinstance(event, TimeoutEvent):
            self._gpus[event.gpu].timeout_pending = True
        elif isinstance(event, ResetEvent):
            self._epoch += 1
            self._refcount = 0
            self._event_sets.clear()
            for gpu in self._gpus:
                gpu.lost = gpu.timeout_pending = False
                for key, cleared in (
                    ("ecc_volatile_sbe", 0),
                    ("ecc_volatile_dbe", 0),
                    ("remapped_rows_pending", False),
                    ("retired_pages_pending", False),
                ):
                    if key in gpu.readings:
                        gpu.readings[key] = cleared

    def _require_session(self) -> None:
        self._advance()
        if self._refcount == 0:
            _fail(pynvml.NVML_ERROR_UNINITIALIZED)

    def _device(self, handle: Any) -> _Gpu:
        """The GPU behind a handle, raising what NVML raises for a bad, lost or stuck one."""
        self._require_session()
        gpu = self._by_address.get(_address(handle) or 0) if isinstance(handle, pynvml.c_nvmlDevice_t) else None
        if gpu is None:
            _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if gpu.lost:
            _fail(pynvml.NVML_ERROR_GPU_IS_LOST)
        if gpu.timeout_pending:
            gpu.timeout_pending = False
            _fail(pynvml.NVML_ERROR_TIMEOUT)
        return gpu

    @staticmethod
    def _reading(gpu: _Gpu, key: str) -> Any:
        if key not in gpu.readings:
            _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.readings[key]

    def _readings(self, handle: Any, *keys: str) -> list[Any]:
        """A call returning several readings: supported if any is present, the others read 0."""
        readings = self._device(handle).readings
        if not any(k in readings for k in keys):
            _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [readings.get(k, 0) for k in keys]

    def _event_set(self, pointer: Any) -> _EventSet:
        event_set = (
            self._event_sets.get(_address(pointer) or 0) if isinstance(pointer, pynvml.c_nvmlEventSet_t) else None
        )
        if event_set is None:
            _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return event_set

    def _next_xid(self, event_set: _EventSet) -> Any:
        for xid in self._xids:
            if (
                xid.epoch == event_set.epoch
                and xid.seq not in event_set.delivered
                and event_set.masks.get(xid.gpu, 0) & pynvml.nvmlEventTypeXidCriticalError
            ):
                event_set.delivered.add(xid.seq)
                data = pynvml.c_nvmlEventData_t()
                data.device = self._gpus[xid.gpu].handle()
                data.eventType = pynvml.nvmlEventTypeXidCriticalError
                data.eventData = xid.xid
                data.gpuInstanceId = data.computeInstanceId = _NO_INSTANCE
                return data
        return None

    def _sleep_step(self, remaining: float) -> float:
        """How long a wait may sleep before looking again: never on an injected clock."""
        if self._clock is not None or remaining <= 0:
            return 0.0
        if self._t0 is None or self._applied >= len(self._timeline):
            return remaining
        until_next = self._t0 + self._timeline[self._applied][1].after_s - self._now()
        return min(remaining, max(until_next, 0.001))


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
