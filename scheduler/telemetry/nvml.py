"""Read a node's GPUs through NVML, one failure at a time.

The reader is written against a *pynvml-like module*: the real backend is the `pynvml` module
itself (package nvidia-ml-py); tests, demos and `run --simulate` pass a `FakeNvml` that has the
same functions, returns the same ctypes structs and raises the same exceptions. So the code below
is exactly what runs on a GPU node.

Every NVML failure is handled on its own terms:
- library not found / driver not loaded / version mismatch: the node cannot be read at all
  (`NodeReading.error`), which the agent publishes as such, never as "0 healthy GPUs";
- `NotSupported`: that reading is absent on this GPU (None), not a fault;
- `GpuIsLost`: the GPU fell off the bus, which *is* a fault (`GpuReading.lost`);
- `Timeout` and other errors on one call: that reading is absent this time, and noted;
- `Uninitialized` (the NVML session ended, e.g. after a driver reset): reopen on the next read,
  and say so (`NodeReading.reopened`), since a reset clears XID-caused faults.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

log = logging.getLogger(__name__)

INIT_ERRORS = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "library-not-found",
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "driver-not-loaded",
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "driver-library-mismatch",
    pynvml.NVML_ERROR_NO_PERMISSION: "no-permission",
}


@dataclass
class GpuReading:
    index: int
    uuid: str = ""
    name: str = ""
    pci_bus_id: str = ""
    lost: bool = False
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_gpu: int | None = None  # percent
    utilization_memory: int | None = None  # percent
    temperature_c: int | None = None
    power_mw: int | None = None
    ecc: dict[tuple[str, str], int] = field(default_factory=dict)  # (bit single|double, scope volatile|aggregate)
    retired_pages_pending: bool | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    errors: dict[str, str] = field(default_factory=dict)  # call -> NVML error, for calls that failed this time


@dataclass
class NodeReading:
    driver_version: str = ""
    gpus: list[GpuReading] = field(default_factory=list)
    xids: list[tuple[int, int]] = field(default_factory=list)  # (gpu index, xid) seen since the last read
    error: str = ""  # NVML could not be used at all
    reopened: bool = False  # the session was re-established (a driver reset ends it)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _address(handle: Any) -> int:
    """What identifies a device handle: pynvml returns a fresh pointer object per call (and
    pointers are not hashable), so events are matched to GPUs by the address they point at."""
    try:
        return ctypes.addressof(handle.contents)
    except (AttributeError, TypeError, ValueError):
        return id(handle)


class NvmlReader:
    """One NVML session: open, read the GPUs, collect XID events, close."""

    def __init__(self, nvml: Any = pynvml):
        self.nvml = nvml
        self.handles: dict[int, Any] = {}
        self.by_address: dict[int, int] = {}
        self.event_set: Any = None
        self.driver_version = ""
        self.count = 0
        self.opened = False
        self._ever_opened = False
        self.pending_xids: list[tuple[int, int]] = []
        self.identity: dict[int, tuple[str, str]] = {}  # index -> (uuid, name) last read

    # -- session ---------------------------------------------------------------------------------
    def open(self) -> str:
        """Start the session; '' when it works, else why not (a NodeReading.error value)."""
        n = self.nvml
        try:
            n.nvmlInit()
        except n.NVMLError as err:
            return INIT_ERRORS.get(getattr(err, "value", None), f"nvml-init: {err}")
        self.opened = True
        self.driver_version = self._call("driver", n.nvmlSystemGetDriverVersion, default="") or ""
        self.driver_version = _text(self.driver_version)
        self.count = n.nvmlDeviceGetCount()
        self.handles.clear()
        self.by_address.clear()
        for i in range(self.count):
            try:
                h = n.nvmlDeviceGetHandleByIndex(i)
            except n.NVMLError as err:
                log.warning("GPU %d: no handle (%s)", i, err)
                continue
            self.handles[i] = h
            self.by_address[_address(h)] = i
        self._register_events()
        return ""

    def _register_events(self) -> None:
        n = self.nvml
        try:
            self.event_set = n.nvmlEventSetCreate()
        except n.NVMLError as err:
            log.warning("no NVML event set, XIDs will not be seen: %s", err)
            self.event_set = None
            return
        for i, h in self.handles.items():
            try:
                n.nvmlDeviceRegisterEvents(h, n.nvmlEventTypeXidCriticalError, self.event_set)
            except n.NVMLError as err:  # NotSupported on some GPUs; GpuIsLost
                log.info("GPU %d: XID events not available (%s)", i, err)

    def close(self) -> None:
        n = self.nvml
        if self.event_set is not None:
            try:
                n.nvmlEventSetFree(self.event_set)
            except n.NVMLError:
                pass
            self.event_set = None
        if self.opened:
            try:
                n.nvmlShutdown()
            except n.NVMLError:
                pass
        self.opened = False

    # -- events ----------------------------------------------------------------------------------
    def poll_events(self, timeout_ms: int = 0) -> list[tuple[int, int]]:
        """XIDs that arrived, waiting up to `timeout_ms` for the first one. Kept until `read()`."""
        n = self.nvml
        if self.event_set is None:
            return []
        got: list[tuple[int, int]] = []
        wait = timeout_ms
        while True:
            try:
                data = n.nvmlEventSetWait_v2(self.event_set, wait)
            except n.NVMLError_Timeout:
                break
            except n.NVMLError as err:
                if getattr(err, "value", None) == n.NVML_ERROR_UNINITIALIZED:
                    self.opened = False  # the session ended under us: reopen on the next read
                else:
                    log.warning("NVML event wait failed: %s", err)
                break
            index = self.by_address.get(_address(data.device))
            if index is None:
                index = self._index_of(data.device)
            if index is not None and data.eventType & n.nvmlEventTypeXidCriticalError:
                got.append((index, int(data.eventData)))
            wait = 0  # drain what is queued, without waiting again
        self.pending_xids.extend(got)
        return got

    def _index_of(self, handle: Any) -> int | None:
        try:
            uuid = _text(self.nvml.nvmlDeviceGetUUID(handle))
        except self.nvml.NVMLError:
            return None
        for i, h in self.handles.items():
            try:
                if _text(self.nvml.nvmlDeviceGetUUID(h)) == uuid:
                    return i
            except self.nvml.NVMLError:
                continue
        return None

    # -- readings --------------------------------------------------------------------------------
    def read(self) -> NodeReading:
        """Every GPU's readings and the XIDs since the last read. Never raises for NVML errors."""
        reopened = False
        if not self.opened:
            error = self.open()
            if error:
                return NodeReading(error=error)
            reopened = self._ever_opened
            self._ever_opened = True
        try:
            gpus = [self._read_gpu(i) for i in range(self.count)]
        except _SessionEnded:
            self.close()
            self.pending_xids = []  # the reset that ended the session cleared what they reported
            error = self.open()
            if error:
                return NodeReading(error=error)
            reopened = True
            gpus = [self._read_gpu(i) for i in range(self.count)]
        self.poll_events(0)
        xids, self.pending_xids = self.pending_xids, []
        return NodeReading(self.driver_version, gpus, xids, reopened=reopened)

    def _read_gpu(self, i: int) -> GpuReading:
        n = self.nvml
        g = GpuReading(index=i)
        h = self.handles.get(i)
        if h is None:
            try:
                h = n.nvmlDeviceGetHandleByIndex(i)
            except n.NVMLError_GpuIsLost:
                g.lost = True
                self._remember_identity(g)
                return g
            except n.NVMLError as err:
                g.errors["handle"] = str(err)
                g.lost = True
                self._remember_identity(g)
                return g
            self.handles[i] = h
            self.by_address[_address(h)] = i
        call = self._device_call(g, h)
        g.uuid = _text(call("uuid", n.nvmlDeviceGetUUID) or "")
        g.name = _text(call("name", n.nvmlDeviceGetName) or "")
        self._remember_identity(g)
        pci = call("pci", n.nvmlDeviceGetPciInfo)
        if pci is not None:
            g.pci_bus_id = _text(pci.busId)
        mem = call("memory", n.nvmlDeviceGetMemoryInfo)
        if mem is not None:
            g.memory_total_bytes, g.memory_used_bytes = int(mem.total), int(mem.used)
        util = call("utilization", n.nvmlDeviceGetUtilizationRates)
        if util is not None:
            g.utilization_gpu, g.utilization_memory = int(util.gpu), int(util.memory)
        g.temperature_c = call("temperature", n.nvmlDeviceGetTemperature, n.NVML_TEMPERATURE_GPU)
        g.power_mw = call("power", n.nvmlDeviceGetPowerUsage)
        for bit, etype in (
            ("single", n.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            ("double", n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        ):
            for scope, ctype in (("volatile", n.NVML_VOLATILE_ECC), ("aggregate", n.NVML_AGGREGATE_ECC)):
                value = call(f"ecc-{bit}-{scope}", n.nvmlDeviceGetTotalEccErrors, etype, ctype)
                if value is not None:
                    g.ecc[(bit, scope)] = int(value)
        rows = call("remapped-rows", n.nvmlDeviceGetRemappedRows)
        if rows is not None:
            g.remapped_rows_pending, g.remapped_rows_failure = bool(rows[2]), bool(rows[3])
        retired = call("retired-pages", n.nvmlDeviceGetRetiredPagesPendingStatus)
        if retired is not None:
            g.retired_pages_pending = retired == n.NVML_FEATURE_ENABLED
        return g

    def _remember_identity(self, g: GpuReading) -> None:
        """A GPU keeps its UUID and name when a call to read them times out or the GPU is lost:
        its health history (and its metrics' labels) must not move to a fresh record."""
        if g.uuid:
            self.identity[g.index] = (g.uuid, g.name or self.identity.get(g.index, ("", ""))[1])
        elif g.index in self.identity:
            g.uuid, name = self.identity[g.index]
            g.name = g.name or name

    def _device_call(self, g: GpuReading, handle: Any) -> Callable[..., Any]:
        n = self.nvml

        def call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
            if g.lost:
                return None
            try:
                return fn(handle, *args)
            except n.NVMLError_NotSupported:
                return None
            except n.NVMLError_GpuIsLost:
                g.lost = True
            except n.NVMLError_Uninitialized:
                raise _SessionEnded from None
            except n.NVMLError as err:  # Timeout, Unknown, ...: absent this time
                g.errors[what] = str(err)
            return None

        return call

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except self.nvml.NVMLError as err:
            log.info("NVML %s: %s", what, err)
            return default


class _SessionEnded(Exception):
    """NVML said Uninitialized mid-read: the session ended (driver reset); reopen."""
