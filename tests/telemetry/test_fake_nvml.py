"""The fake NVML behaves like pynvml: the same structs, the same exception classes, the same rules.

Each test states one behaviour the NVML reader can rely on with the fake and with the driver.
Time is an injected clock; nothing sleeps except the one test of the real-clock wait (<0.2 s).
"""

from __future__ import annotations

import ctypes
import json
import time
from pathlib import Path
from typing import Any

import pynvml
import pytest

from scheduler.telemetry.fake_nvml import SCHEMA_PATH, FakeNvml, FakeNvmlFileError, json_schema
from tests.telemetry.fakes import Clock, spec

FIXTURES = Path(__file__).parent / "fixtures"
XID = pynvml.nvmlEventTypeXidCriticalError


def started(data: dict[str, Any] | str, clock: Clock | None = None) -> FakeNvml:
    """A fake after nvmlInit, from a dict or a fixture name."""
    clock = clock or Clock()
    nvml = FakeNvml.from_file(FIXTURES / data, clock=clock) if isinstance(data, str) else FakeNvml(data, clock=clock)
    nvml.nvmlInit()
    return nvml


def registered(nvml: FakeNvml) -> Any:
    """An event set with every GPU registered for XID errors, as the agent sets it up."""
    event_set = nvml.nvmlEventSetCreate()
    for i in range(nvml.nvmlDeviceGetCount()):
        nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(i), nvml.nvmlEventTypeXidCriticalError,
                                      event_set)
    return event_set


def index_of(nvml: FakeNvml, handle: Any) -> int:
    return nvml.nvmlDeviceGetIndex(handle)


def raises_nvml(cls: type[pynvml.NVMLError], code: int):
    """pytest.raises for the real pynvml class, also checking err.value like pynvml sets it."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(cls)
            self._info = self._ctx.__enter__()
            return self._info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            assert type(self._info.value) is cls
            assert self._info.value.value == code
            return suppressed

    return _Check()


# -- readings ---------------------------------------------------------------------------------


def test_readings_round_trip_from_the_file_as_the_real_pynvml_structs() -> None:
    nvml = started("dgx-h200.json")
    doc = json.loads((FIXTURES / "dgx-h200.json").read_text())

    assert nvml.nvmlSystemGetDriverVersion() == "580.65.06"
    assert nvml.nvmlDeviceGetCount() == 8
    for gpu in doc["gpus"]:
        h = nvml.nvmlDeviceGetHandleByIndex(gpu["index"])
        assert isinstance(h, pynvml.c_nvmlDevice_t)
        assert nvml.nvmlDeviceGetUUID(h) == gpu["uuid"]
        assert nvml.nvmlDeviceGetName(h) == "NVIDIA H200"

        memory = nvml.nvmlDeviceGetMemoryInfo(h)
        assert isinstance(memory, pynvml.c_nvmlMemory_t)
        assert (memory.total, memory.used) == (150754820096, gpu["memory_used_bytes"])
        assert memory.free == memory.total - memory.used

        util = nvml.nvmlDeviceGetUtilizationRates(h)
        assert isinstance(util, pynvml.c_nvmlUtilization_t)
        assert (util.gpu, util.memory) == (gpu["utilization_gpu"], gpu["utilization_memory"])

        temperature = nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
        assert type(temperature) is int and temperature == gpu["temperature_c"]
        assert nvml.nvmlDeviceGetTemperatureV(h, nvml.NVML_TEMPERATURE_GPU) == gpu["temperature_c"]
        power = nvml.nvmlDeviceGetPowerUsage(h)
        assert type(power) is int and power == gpu["power_mw"]
        for error_type in (nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED):
            for counter in (nvml.NVML_VOLATILE_ECC, nvml.NVML_AGGREGATE_ECC):
                assert nvml.nvmlDeviceGetTotalEccErrors(h, error_type, counter) == 0
        assert nvml.nvmlDeviceGetRemappedRows(h) == (0, 0, 0, 0)


def test_pci_info_is_the_v3_struct_with_the_bus_id_as_nvml_writes_it() -> None:
    nvml = started(spec({"pci_bus_id": "0000:9a:00.0"}))
    info = nvml.nvmlDeviceGetPciInfo(nvml.nvmlDeviceGetHandleByIndex(0))

    assert isinstance(info, pynvml.nvmlPciInfo_t)
    assert info.busId == "00000000:9A:00.0"  # str (pynvml decodes), 8-digit domain, upper-case hex
    assert info.busIdLegacy == "0000:9A:00.0"
    assert (info.domain, info.bus, info.device) == (0, 0x9A, 0)


def test_each_ecc_counter_reads_its_own_key() -> None:
    nvml = started("v100-pre-ampere.json")
    h = nvml.nvmlDeviceGetHandleByIndex(1)
    corrected, uncorrected = nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED

    assert nvml.nvmlDeviceGetTotalEccErrors(h, corrected, nvml.NVML_VOLATILE_ECC) == 3
    assert nvml.nvmlDeviceGetTotalEccErrors(h, uncorrected, nvml.NVML_VOLATILE_ECC) == 1
    assert nvml.nvmlDeviceGetTotalEccErrors(h, corrected, nvml.NVML_AGGREGATE_ECC) == 40
    assert nvml.nvmlDeviceGetTotalEccErrors(h, uncorrected, nvml.NVML_AGGREGATE_ECC) == 1


def test_pre_ampere_gpu_reports_retired_pages_and_has_no_remapped_rows() -> None:
    nvml = started("v100-pre-ampere.json")
    healthy, pending = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)

    assert nvml.nvmlDeviceGetRetiredPagesPendingStatus(healthy) == pynvml.NVML_FEATURE_DISABLED
    assert nvml.nvmlDeviceGetRetiredPagesPendingStatus(pending) == pynvml.NVML_FEATURE_ENABLED
    with raises_nvml(pynvml.NVMLError_NotSupported, pynvml.NVML_ERROR_NOT_SUPPORTED):
        nvml.nvmlDeviceGetRemappedRows(healthy)


def test_ampere_and_later_report_remapped_rows_as_four_ints_and_no_retired_pages() -> None:
    nvml = started(spec({"remapped_rows_correctable": 2, "remapped_rows_uncorrectable": 1,
                         "remapped_rows_pending": True, "remapped_rows_failure": False}))
    h = nvml.nvmlDeviceGetHandleByIndex(0)

    rows = nvml.nvmlDeviceGetRemappedRows(h)
    assert rows == (2, 1, 1, 0) and all(type(v) is int for v in rows)
    with raises_nvml(pynvml.NVMLError_NotSupported, pynvml.NVML_ERROR_NOT_SUPPORTED):
        nvml.nvmlDeviceGetRetiredPagesPendingStatus(h)


@pytest.mark.parametrize("call", [
    lambda n, h: n.nvmlDeviceGetPciInfo(h),
    lambda n, h: n.nvmlDeviceGetMemoryInfo(h),
    lambda n, h: n.nvmlDeviceGetUtilizationRates(h),
    lambda n, h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
    lambda n, h: n.nvmlDeviceGetTemperatureV(h, n.NVML_TEMPERATURE_GPU),
    lambda n, h: n.nvmlDeviceGetPowerUsage(h),
    lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_VOLATILE_ECC),
    lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_AGGREGATE_ECC),
    lambda n, h: n.nvmlDeviceGetRemappedRows(h),
    lambda n, h: n.nvmlDeviceGetRetiredPagesPendingStatus(h),
], ids=["pci", "memory", "utilization", "temperature", "temperature-v", "power", "ecc-volatile-sbe",
        "ecc-aggregate-dbe", "remapped-rows", "retired-pages"])
def test_an_absent_reading_is_not_supported_rather_than_a_default(call) -> None:
    nvml = started(spec({}))

    with raises_nvml(pynvml.NVMLError_NotSupported, pynvml.NVML_ERROR_NOT_SUPPORTED):
        call(nvml, nvml.nvmlDeviceGetHandleByIndex(0))


def test_a_call_of_several_readings_is_supported_when_one_is_present_and_the_rest_read_zero() -> None:
    nvml = started(spec({"utilization_gpu": 70, "remapped_rows_pending": True, "memory_total_bytes": 1000}))
    h = nvml.nvmlDeviceGetHandleByIndex(0)

    util = nvml.nvmlDeviceGetUtilizationRates(h)
    assert (util.gpu, util.memory) == (70, 0)
    assert nvml.nvmlDeviceGetRemappedRows(h) == (0, 0, 1, 0)
    memory = nvml.nvmlDeviceGetMemoryInfo(h)
    assert (memory.total, memory.used, memory.free) == (1000, 0, 1000)


@pytest.mark.parametrize("call", [
    lambda n, h: n.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU_MAX),
    lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, 7, n.NVML_VOLATILE_ECC),
    lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, 7),
    lambda n, h: n.nvmlDeviceGetHandleByIndex(1),
    lambda n, h: n.nvmlDeviceGetHandleByIndex(-1),
    lambda n, h: n.nvmlDeviceGetUUID(0),
    lambda n, h: n.nvmlDeviceGetUUID(None),
    lambda n, h: n.nvmlDeviceGetUUID(pynvml.c_nvmlDevice_t()),
    lambda n, h: n.nvmlDeviceRegisterEvents(h, XID, pynvml.c_nvmlEventSet_t()),
    lambda n, h: n.nvmlDeviceRegisterEvents(h, 1 << 40, n.nvmlEventSetCreate()),
    lambda n, h: n.nvmlEventSetWait_v2(n.nvmlEventSetCreate(), -1),
], ids=["sensor", "error-type", "counter-type", "index-past-count", "negative-index", "int-handle",
        "none-handle", "null-handle", "unknown-event-set", "unknown-event-type", "negative-timeout"])
def test_bad_arguments_are_invalid_argument(call) -> None:
    nvml = started(spec({"temperature_c": 50, "ecc_volatile_sbe": 0}))

    with raises_nvml(pynvml.NVMLError_InvalidArgument, pynvml.NVML_ERROR_INVALID_ARGUMENT):
        call(nvml, nvml.nvmlDeviceGetHandleByIndex(0))


# -- handles ----------------------------------------------------------------------------------


def test_handles_are_fresh_device_pointers_per_call_like_pynvml_so_identify_them_by_index_or_address() -> None:
    nvml = started("dgx-h200.json")
    first, again, other = (nvml.nvmlDeviceGetHandleByIndex(i) for i in (0, 0, 1))

    assert isinstance(first, pynvml.c_nvmlDevice_t)
    assert first is not again and first != again  # as pynvml: a new pointer object each call
    with pytest.raises(TypeError):
        hash(first)  # ctypes pointers are not dict keys, with the driver either
    assert ctypes.addressof(first.contents) == ctypes.addressof(again.contents)
    assert ctypes.addressof(first.contents) != ctypes.addressof(other.contents)
    assert (index_of(nvml, first), index_of(nvml, again), index_of(nvml, other)) == (0, 0, 1)


# -- session ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda n: n.nvmlSystemGetDriverVersion(),
    lambda n: n.nvmlDeviceGetCount(),
    lambda n: n.nvmlDeviceGetHandleByIndex(0),
    lambda n: n.nvmlEventSetCreate(),
    lambda n: n.nvmlShutdown(),
], ids=["driver-version", "count", "handle", "event-set", "shutdown"])
def test_calls_before_nvml_init_are_uninitialized(call) -> None:
    nvml = FakeNvml.from_file(FIXTURES / "dgx-h200.json", clock=Clock())

    with raises_nvml(pynvml.NVMLError_Uninitialized, pynvml.NVML_ERROR_UNINITIALIZED):
        call(nvml)


@pytest.mark.parametrize(("init_error", "cls", "code"), [
    ("library_not_found", pynvml.NVMLError_LibraryNotFound, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND),
    ("driver_not_loaded", pynvml.NVMLError_DriverNotLoaded, pynvml.NVML_ERROR_DRIVER_NOT_LOADED),
    ("lib_rm_version_mismatch", pynvml.NVMLError_LibRmVersionMismatch, pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH),
])
def test_init_error_makes_every_nvml_init_fail_and_leaves_nvml_uninitialized(init_error, cls, code) -> None:
    nvml = FakeNvml(spec({}, init_error=init_error), clock=Clock())

    for _ in range(2):
        with raises_nvml(cls, code):
            nvml.nvmlInit()
    with raises_nvml(pynvml.NVMLError_Uninitialized, pynvml.NVML_ERROR_UNINITIALIZED):
        nvml.nvmlDeviceGetCount()
    with raises_nvml(pynvml.NVMLError_Uninitialized, pynvml.NVML_ERROR_UNINITIALIZED):
        nvml.nvmlShutdown()


def test_no_driver_fixture_fails_like_a_node_without_the_driver() -> None:
    nvml = FakeNvml.from_file(FIXTURES / "no-driver.json", clock=Clock())

    with pytest.raises(nvml.NVMLError_DriverNotLoaded):
        nvml.nvmlInit()


def test_init_and_shutdown_are_reference_counted_and_extra_shutdowns_are_harmless() -> None:
    nvml = started(spec({}))
    nvml.nvmlInit()

    nvml.nvmlShutdown()
    assert nvml.nvmlDeviceGetCount() == 1
    nvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlShutdown()  # NVML: no error when shut down more often than initialised
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 1


def test_the_fake_exposes_pynvml_own_constants_and_exception_classes() -> None:
    nvml = FakeNvml(spec({}), clock=Clock())

    for name in ("NVML_TEMPERATURE_GPU", "NVML_MEMORY_ERROR_TYPE_CORRECTED", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED",
                 "NVML_VOLATILE_ECC", "NVML_AGGREGATE_ECC", "nvmlEventTypeXidCriticalError",
                 "NVML_FEATURE_ENABLED", "NVML_FEATURE_DISABLED", "NVML_ERROR_GPU_IS_LOST",
                 "nvmlEventTypeDoubleBitEccError"):
        assert getattr(nvml, name) == getattr(pynvml, name)
    for name in [n for n in dir(pynvml) if n.startswith("NVMLError")]:
        assert getattr(nvml, name) is getattr(pynvml, name)


def test_a_pynvml_function_the_fake_does_not_fake_fails_loudly_by_name() -> None:
    nvml = FakeNvml(spec({}), clock=Clock())

    with pytest.raises(AttributeError, match="nvmlDeviceGetClockInfo"):
        nvml.nvmlDeviceGetClockInfo  # noqa: B018


def test_errors_are_built_the_pynvml_way() -> None:
    nvml = started(spec({"lost": True}))

    with pytest.raises(pynvml.NVMLError) as info:
        nvml.nvmlDeviceGetHandleByIndex(0)
    assert info.value == pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
    assert str(info.value) == "GPU is lost"


# -- lost GPUs --------------------------------------------------------------------------------


def test_a_lost_gpu_is_counted_but_has_no_handle() -> None:
    nvml = started(spec({}, {"lost": True}))

    assert nvml.nvmlDeviceGetCount() == 2
    nvml.nvmlDeviceGetHandleByIndex(0)
    with raises_nvml(pynvml.NVMLError_GpuIsLost, pynvml.NVML_ERROR_GPU_IS_LOST):
        nvml.nvmlDeviceGetHandleByIndex(1)


@pytest.mark.parametrize("call", [
    lambda n, h: n.nvmlDeviceGetUUID(h),
    lambda n, h: n.nvmlDeviceGetName(h),
    lambda n, h: n.nvmlDeviceGetIndex(h),
    lambda n, h: n.nvmlDeviceGetPciInfo(h),
    lambda n, h: n.nvmlDeviceGetMemoryInfo(h),
    lambda n, h: n.nvmlDeviceGetUtilizationRates(h),
    lambda n, h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
    lambda n, h: n.nvmlDeviceGetPowerUsage(h),
    lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_VOLATILE_ECC),
    lambda n, h: n.nvmlDeviceGetRemappedRows(h),
    lambda n, h: n.nvmlDeviceGetRetiredPagesPendingStatus(h),
    lambda n, h: n.nvmlDeviceRegisterEvents(h, XID, n.nvmlEventSetCreate()),
], ids=["uuid", "name", "index", "pci", "memory", "utilization", "temperature", "power", "ecc", "remapped-rows",
        "retired-pages", "register-events"])
def test_every_call_on_a_gpu_that_fell_off_the_bus_is_gpu_is_lost(call) -> None:
    clock = Clock()
    every_reading = {**json.loads((FIXTURES / "dgx-h200.json").read_text())["gpus"][0], "retired_pages_pending": False}
    nvml = started(spec(every_reading, events=[{"after_s": 10, "gpu": 0, "set": {"lost": True}}]), clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    call(nvml, handle)  # works while the GPU is on the bus

    clock.advance(10)
    with raises_nvml(pynvml.NVMLError_GpuIsLost, pynvml.NVML_ERROR_GPU_IS_LOST):
        call(nvml, handle)


# -- XID events -------------------------------------------------------------------------------


def test_xid_events_arrive_in_order_once_each_with_the_gpu_handle_then_timeout() -> None:
    clock = Clock()
    nvml = started(spec({}, {}, {}, {}, events=[{"after_s": 30, "gpu": 2, "xid": 48},
                                                {"after_s": 0, "gpu": 3, "xid": 79},
                                                {"after_s": 30, "gpu": 1, "xid": 31}]), clock)
    event_set = registered(nvml)

    first = nvml.nvmlEventSetWait_v2(event_set, 1000)
    assert isinstance(first, pynvml.c_nvmlEventData_t)
    assert isinstance(first.device, pynvml.c_nvmlDevice_t)
    assert index_of(nvml, first.device) == 3
    assert ctypes.addressof(first.device.contents) == ctypes.addressof(nvml.nvmlDeviceGetHandleByIndex(3).contents)
    assert (first.eventType, first.eventData) == (XID, 79)
    assert (first.gpuInstanceId, first.computeInstanceId) == (0xFFFFFFFF, 0xFFFFFFFF)
    with raises_nvml(pynvml.NVMLError_Timeout, pynvml.NVML_ERROR_TIMEOUT):
        nvml.nvmlEventSetWait_v2(event_set, 1000)

    clock.advance(30)
    delivered = [nvml.nvmlEventSetWait_v2(event_set, 0) for _ in range(2)]
    assert [(index_of(nvml, e.device), e.eventData) for e in delivered] == [(2, 48), (1, 31)]  # file order on ties
    with pytest.raises(nvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(event_set, 0)


def test_wait_never_sleeps_on_an_injected_clock() -> None:
    nvml = started(spec({}))
    event_set = registered(nvml)

    began = time.monotonic()
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 60_000)
    assert time.monotonic() - began < 30  # an injected clock never sleeps (a real wait would take 60 s)


def test_wait_on_the_real_clock_sleeps_until_the_event_or_at_most_the_timeout() -> None:
    nvml = FakeNvml(spec({}, events=[{"after_s": 0.15, "gpu": 0, "xid": 43}]))
    nvml.nvmlInit()
    event_set = registered(nvml)

    began = time.monotonic()
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 10)
    assert time.monotonic() - began >= 0.009  # it did wait out the 10 ms
    assert nvml.nvmlEventSetWait_v2(event_set, 60_000).eventData == 43
    assert 0.1 <= time.monotonic() - began < 30  # woken by the event at 0.15 s, not the 60 s timeout


def test_each_event_set_gets_its_own_copy_and_only_for_gpus_it_registered() -> None:
    nvml = started(spec({}, {}, events=[{"after_s": 0, "gpu": 0, "xid": 79}, {"after_s": 0, "gpu": 1, "xid": 48}]))
    only_gpu1, everything = nvml.nvmlEventSetCreate(), registered(nvml)
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(1), XID, only_gpu1)

    assert nvml.nvmlEventSetWait_v2(only_gpu1, 0).eventData == 48
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(only_gpu1, 0)
    assert [nvml.nvmlEventSetWait_v2(everything, 0).eventData for _ in range(2)] == [79, 48]

    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(0), XID, only_gpu1)  # late registration
    assert nvml.nvmlEventSetWait_v2(only_gpu1, 0).eventData == 79


def test_xids_are_not_delivered_to_a_set_registered_for_other_event_types() -> None:
    nvml = started(spec({}, events=[{"after_s": 0, "gpu": 0, "xid": 79}]))
    event_set = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeDoubleBitEccError,
                                  event_set)

    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 0)


def test_a_freed_event_set_is_no_longer_usable() -> None:
    nvml = started(spec({}))
    event_set = registered(nvml)

    nvml.nvmlEventSetFree(event_set)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlEventSetWait_v2(event_set, 0)


def test_once_sees_the_events_due_at_zero_counted_from_nvml_init_not_from_loading() -> None:
    clock = Clock()
    nvml = FakeNvml.from_file(FIXTURES / "dgx-h200-xid79.json", clock=clock)
    clock.advance(500)  # loading long before the agent starts changes nothing
    nvml.nvmlInit()
    event_set = registered(nvml)

    event = nvml.nvmlEventSetWait_v2(event_set, 100)
    assert (index_of(nvml, event.device), event.eventData) == (3, 79)
    h3 = nvml.nvmlDeviceGetHandleByIndex(3)
    assert nvml.nvmlDeviceGetUtilizationRates(h3).gpu == 0  # still readable: XID 79 alone does not lose it
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 100)


# -- set, timeout and reset on the timeline ---------------------------------------------------


def test_set_changes_readings_from_its_time_on_and_null_removes_a_reading() -> None:
    clock = Clock()
    nvml = started(spec({"temperature_c": 61, "ecc_volatile_dbe": 0, "power_mw": 640000},
                        events=[{"after_s": 60, "gpu": 0, "set": {"temperature_c": 88, "ecc_volatile_dbe": 1,
                                                                  "power_mw": None}}]), clock)
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    dbe = (nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC)

    clock.advance(59.9)
    assert nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU) == 61
    assert nvml.nvmlDeviceGetTotalEccErrors(h, *dbe) == 0
    clock.advance(0.1)
    assert nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU) == 88
    assert nvml.nvmlDeviceGetTotalEccErrors(h, *dbe) == 1
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(h)


def test_timeout_event_makes_the_next_call_on_that_gpu_time_out_once() -> None:
    clock = Clock()
    nvml = started("timeline.json", clock)
    h0, h1 = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)

    clock.advance(5)
    assert nvml.nvmlDeviceGetTemperature(h1, nvml.NVML_TEMPERATURE_GPU) == 60  # other GPUs unaffected
    with raises_nvml(pynvml.NVMLError_Timeout, pynvml.NVML_ERROR_TIMEOUT):
        nvml.nvmlDeviceGetTemperature(h0, nvml.NVML_TEMPERATURE_GPU)
    assert nvml.nvmlDeviceGetTemperature(h0, nvml.NVML_TEMPERATURE_GPU) == 61


def test_an_xid_before_the_gpu_is_lost_is_delivered_and_none_while_it_is_lost() -> None:
    clock = Clock()
    nvml = started("timeline.json", clock)
    event_set = registered(nvml)
    # the agent maps event devices by address: a lost GPU's handle answers no call, not even GetIndex
    index_by_address = {ctypes.addressof(nvml.nvmlDeviceGetHandleByIndex(i).contents): i for i in range(4)}
    assert nvml.nvmlEventSetWait_v2(event_set, 0).eventData == 79  # GPU 3 at 0

    clock.advance(75)
    events = [nvml.nvmlEventSetWait_v2(event_set, 0) for _ in range(2)]
    seen = [(index_by_address[ctypes.addressof(e.device.contents)], e.eventData) for e in events]
    assert seen == [(2, 48), (1, 79)]  # GPU 1's XID 79 at 60 (before it was lost), not the one at 70
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetIndex(events[1].device)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 0)


def test_reset_ends_the_session_and_brings_the_node_back_clean_on_nvml_init() -> None:
    clock = Clock()
    nvml = started("timeline.json", clock)
    old_set = registered(nvml)
    h0, h1 = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    clock.advance(60)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetUUID(h1)

    clock.advance(30)  # the reset at 90
    for call in (nvml.nvmlDeviceGetCount, lambda: nvml.nvmlDeviceGetUUID(h0),
                 lambda: nvml.nvmlEventSetWait_v2(old_set, 0)):
        with raises_nvml(pynvml.NVMLError_Uninitialized, pynvml.NVML_ERROR_UNINITIALIZED):
            call()
    nvml.nvmlShutdown()  # the agent's recovery: shut down (harmless) and init again
    nvml.nvmlInit()

    corrected, uncorrected = nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    assert nvml.nvmlDeviceGetUUID(h0) == "GPU-0000"  # handles survive: NVML's are static per process
    assert nvml.nvmlDeviceGetTotalEccErrors(h0, corrected, nvml.NVML_VOLATILE_ECC) == 0  # was 2
    assert nvml.nvmlDeviceGetTotalEccErrors(h0, corrected, nvml.NVML_AGGREGATE_ECC) == 9  # InfoROM keeps it
    assert nvml.nvmlDeviceGetRemappedRows(h0) == (1, 0, 0, 0)  # the pending remap is applied
    h1 = nvml.nvmlDeviceGetHandleByIndex(1)  # back on the bus
    assert nvml.nvmlDeviceGetTotalEccErrors(h1, uncorrected, nvml.NVML_VOLATILE_ECC) == 0
    assert nvml.nvmlDeviceGetTotalEccErrors(h1, uncorrected, nvml.NVML_AGGREGATE_ECC) == 1
    with raises_nvml(pynvml.NVMLError_InvalidArgument, pynvml.NVML_ERROR_INVALID_ARGUMENT):
        nvml.nvmlEventSetWait_v2(old_set, 0)  # event sets died with the session

    new_set = registered(nvml)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(new_set, 0)  # XIDs from before the reset are gone
    clock.advance(30)  # the timeline keeps counting from the first nvmlInit: XID 13 at 120
    event = nvml.nvmlEventSetWait_v2(new_set, 0)
    assert (index_of(nvml, event.device), event.eventData) == (2, 13)


# -- the file ---------------------------------------------------------------------------------


def test_extra_keys_are_allowed_at_every_level_but_inside_set() -> None:
    data = spec({"serial": "1652823055123", "temperature_c": 40}, events=[{"after_s": 0, "gpu": 0, "xid": 79,
                                                                           "note": "fell off the bus"}])
    data["node"] = "dgx-h200-01"

    nvml = started(data)
    assert nvml.nvmlDeviceGetTemperature(nvml.nvmlDeviceGetHandleByIndex(0), nvml.NVML_TEMPERATURE_GPU) == 40


@pytest.mark.parametrize(("change", "path", "says"), [
    (lambda d: d["gpus"][1].update(temperature_c=-5), "$.gpus[1].temperature_c", "greater than or equal to 0"),
    (lambda d: d["gpus"][0].update(utilization_gpu=101), "$.gpus[0].utilization_gpu", "less than or equal to 100"),
    (lambda d: d["gpus"][0].update(lost="yes"), "$.gpus[0].lost", "valid boolean"),
    (lambda d: d["gpus"][0].update(power_mw=640.5), "$.gpus[0].power_mw", "valid integer"),
    (lambda d: d["gpus"][1].pop("uuid"), "$.gpus[1].uuid", "Field required"),
    (lambda d: d["gpus"][0].update(pci_bus_id="18:00.0"), "$.gpus[0].pci_bus_id", "should match pattern"),
    (lambda d: d["gpus"][1].update(index=0), "$.gpus[1].index", "indices must be 0..1"),
    (lambda d: d["gpus"][1].update(uuid="GPU-0000"), "$.gpus[1].uuid", "duplicate uuid"),
    (lambda d: d["gpus"][0].update(memory_total_bytes=10, memory_used_bytes=11), "$.gpus[0].memory_used_bytes",
     "exceeds memory_total_bytes"),
    (lambda d: d.update(init_error="gpu_on_fire"), "$.init_error", "'library_not_found'"),
    (lambda d: d.update(driver_version=""), "$.driver_version", "at least 1 character"),
    (lambda d: d["events"].append({"after_s": 3, "gpu": 0}), "$.events[0]", "exactly one of the keys"),
    (lambda d: d["events"].append({"after_s": 3, "gpu": 0, "xid": 79, "timeout": True}), "$.events[0]",
     "exactly one of the keys"),
    (lambda d: d["events"].append({"after_s": -1, "gpu": 0, "xid": 79}), "$.events[0].after_s",
     "greater than or equal to 0"),
    (lambda d: d["events"].append({"after_s": 1, "gpu": 5, "xid": 79}), "$.events[0].gpu", "no GPU with index 5"),
    (lambda d: d["events"].append({"after_s": 1, "gpu": 0, "set": {"temprature_c": 90}}),
     "$.events[0].set.temprature_c", "unknown key; a 'set' may change: memory_total_bytes"),
    (lambda d: d["events"].append({"after_s": 1, "gpu": 0, "set": {"lost": "yes"}}), "$.events[0].set.lost",
     "valid boolean"),
    (lambda d: d["events"].append({"after_s": 1, "reset": False}), "$.events[0].reset", "Input should be True"),
], ids=["negative", "over-100", "bool", "float-for-int", "missing-uuid", "bus-id", "duplicate-index",
        "duplicate-uuid", "used-over-total", "init-error", "empty-driver-version", "kindless-event", "two-kinds",
        "negative-time", "unknown-gpu", "typo-in-set", "set-type", "reset-false"])
def test_a_bad_file_names_the_file_and_the_json_path_of_the_bad_field(tmp_path, change, path, says) -> None:
    data = spec({}, {})
    change(data)
    bad = tmp_path / "node.json"
    bad.write_text(json.dumps(data))

    with pytest.raises(FakeNvmlFileError) as info:
        FakeNvml.from_file(bad)
    assert f"{bad}: {path}: " in str(info.value)
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_json_names_the_file_and_the_line(tmp_path) -> None:
    bad = tmp_path / "node.json"
    bad.write_text('{"driver_version": "580.65.06",\n "gpus": [,]}')

    with pytest.raises(FakeNvmlFileError, match=rf"{bad}: \$: not JSON: .* line 2 column"):
        FakeNvml.from_file(bad)


def test_every_problem_is_reported_at_once() -> None:
    data = spec({"temperature_c": -1, "power_mw": -1})

    with pytest.raises(FakeNvmlFileError) as info:
        FakeNvml(data, source="inline")
    assert [p for p, _ in info.value.problems] == ["$.gpus[0].temperature_c", "$.gpus[0].power_mw"]


def test_the_committed_json_schema_is_the_models_schema() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())

    assert committed == json_schema(), (
        "regenerate: python -m scheduler.telemetry.fake_nvml > scheduler/telemetry/fake_nvml.schema.json")


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_fixture_is_valid_for_the_schema_file_and_the_loader(fixture) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads((FIXTURES / fixture).read_text())

    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    FakeNvml.from_file(FIXTURES / fixture)


def test_the_schema_file_refuses_an_event_of_two_kinds() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = spec({}, events=[{"after_s": 0, "gpu": 0, "xid": 79, "timeout": True}])

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))


def test_dgx_h200_fixtures_describe_a_realistic_node() -> None:
    healthy = json.loads((FIXTURES / "dgx-h200.json").read_text())
    xid79 = json.loads((FIXTURES / "dgx-h200-xid79.json").read_text())

    gpus = healthy["gpus"]
    assert [g["index"] for g in gpus] == list(range(8))
    assert {g["name"] for g in gpus} == {"NVIDIA H200"}
    assert {g["memory_total_bytes"] for g in gpus} == {150754820096}  # 141 GB as NVML reports it
    assert all(600_000 <= g["power_mw"] <= 700_000 for g in gpus)
    assert len({g["uuid"] for g in gpus}) == len({g["pci_bus_id"] for g in gpus}) == 8
    assert not any(g["lost"] or g["ecc_volatile_dbe"] or g["remapped_rows_pending"] for g in gpus)
    assert healthy["events"] == []
    assert xid79["events"] == [{"after_s": 0, "gpu": 3, "xid": 79}]
    assert [g["uuid"] for g in xid79["gpus"]] == [g["uuid"] for g in gpus]


def test_a_file_without_a_driver_version_reads_as_unknown_like_any_absent_reading() -> None:
    """Every reading is optional, the driver version too: absent, NVML says "not supported" and
    the agent reports the version as unknown ("") rather than refusing the file."""
    from scheduler.telemetry.nvml import NvmlReader

    data = spec({}, {})
    data.pop("driver_version")
    nvml = FakeNvml(data)
    nvml.nvmlInit()
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlSystemGetDriverVersion()
    nvml.nvmlShutdown()
    reading = NvmlReader(FakeNvml(data)).read()
    assert reading.driver_version == "" and not reading.error and reading.gpus
