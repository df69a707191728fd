"""The NVML reader against the fake NVML: every reading, every NVML failure, and what each means.

The fake returns pynvml's own structs and raises pynvml's own exceptions, so what holds here holds
on a GPU node. Time is an injected clock (seconds since the agent's start): nothing sleeps.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scheduler.telemetry.fake_nvml import FakeNvml
from scheduler.telemetry.health import HealthRules, conditions
from scheduler.telemetry.nvml import GpuReading, NodeReading, NvmlReader
from tests.telemetry.fakes import Clock, spec

FIXTURES = Path(__file__).parent / "fixtures"
H200 = json.loads((FIXTURES / "dgx-h200.json").read_text())


def reader_for(data: dict[str, Any] | str, clock: Clock | None = None) -> NvmlReader:
    """A reader over a fake built from a dict or a fixture file name."""
    clock = clock or Clock()
    nvml = FakeNvml.from_file(FIXTURES / data, clock=clock) if isinstance(data, str) else FakeNvml(data, clock=clock)
    return NvmlReader(nvml)


def readings_of(g: GpuReading) -> GpuReading:
    """The reading without the GPU's identity (what a lost GPU may still be known by)."""
    return replace(g, uuid="", name="")


def read_once(data: dict[str, Any] | str) -> NodeReading:
    reader = reader_for(data)
    try:
        return reader.read()
    finally:
        reader.close()


# -- every reading -------------------------------------------------------------------------------
def test_a_healthy_h200_node_reads_every_field():
    reading = read_once("dgx-h200.json")

    assert reading.error == ""
    assert reading.reopened is False
    assert reading.driver_version == "580.65.06"
    assert [g.index for g in reading.gpus] == list(range(8))
    assert reading.xids == []
    g = reading.gpus[0]
    assert g == GpuReading(
        index=0, uuid="GPU-56748f8b-68e4-59ff-8952-44ecb19afd60", name="NVIDIA H200",
        pci_bus_id="00000000:18:00.0",  # NVML's own form: 8-digit domain
        lost=False, memory_total_bytes=150754820096, memory_used_bytes=128849018880,
        utilization_gpu=97, utilization_memory=46, temperature_c=58, power_mw=652310,
        ecc={("single", "volatile"): 0, ("single", "aggregate"): 0,
             ("double", "volatile"): 0, ("double", "aggregate"): 0},
        retired_pages_pending=None,  # an H200 has row remapping, not page retirement
        remapped_rows_pending=False, remapped_rows_failure=False, errors={})


def test_each_gpu_is_read_under_its_own_index():
    reading = read_once("dgx-h200.json")

    assert [(g.index, g.uuid, g.pci_bus_id) for g in reading.gpus] == [
        (i, gpu["uuid"], "0000" + gpu["pci_bus_id"].upper()) for i, gpu in enumerate(H200["gpus"])]


def test_the_four_ecc_counters_are_read_separately():
    reading = read_once(spec({"ecc_volatile_sbe": 3, "ecc_volatile_dbe": 1,
                              "ecc_aggregate_sbe": 40, "ecc_aggregate_dbe": 2}))

    assert reading.gpus[0].ecc == {("single", "volatile"): 3, ("double", "volatile"): 1,
                                   ("single", "aggregate"): 40, ("double", "aggregate"): 2}


@pytest.mark.parametrize("pending, failure", [(True, False), (False, True), (True, True), (False, False)])
def test_remapped_rows_pending_and_failure_are_read(pending, failure):
    g = read_once(spec({"remapped_rows_correctable": 2, "remapped_rows_pending": pending,
                        "remapped_rows_failure": failure})).gpus[0]

    assert (g.remapped_rows_pending, g.remapped_rows_failure) == (pending, failure)


def test_a_pre_ampere_gpu_reports_retired_pages_and_no_remapped_rows():
    reading = read_once("v100-pre-ampere.json")

    assert reading.driver_version == "535.183.06"
    assert [g.retired_pages_pending for g in reading.gpus] == [False, True]
    assert [(g.remapped_rows_pending, g.remapped_rows_failure) for g in reading.gpus] == [(None, None)] * 2
    assert reading.gpus[1].ecc[("double", "volatile")] == 1


def test_an_unsupported_reading_is_absent_not_a_fault():
    g = read_once(spec({"temperature_c": 40})).gpus[0]

    assert g.temperature_c == 40
    assert (g.memory_total_bytes, g.memory_used_bytes, g.utilization_gpu, g.utilization_memory, g.power_mw) \
        == (None, None, None, None, None)
    assert g.ecc == {}
    assert (g.remapped_rows_pending, g.remapped_rows_failure, g.retired_pages_pending) == (None, None, None)
    assert g.pci_bus_id == ""
    assert g.errors == {}  # "not supported" is not an error
    assert g.lost is False
    assert conditions(g, HealthRules()) == ""  # and not a reason to call the GPU unhealthy


def test_a_reading_that_disappears_later_becomes_absent():
    clock = Clock()
    reader = reader_for(spec({"power_mw": 500000, "temperature_c": 50},
                             events=[{"after_s": 10, "gpu": 0, "set": {"power_mw": None}}]), clock)
    assert reader.read().gpus[0].power_mw == 500000

    clock.advance(10)
    g = reader.read().gpus[0]

    assert (g.power_mw, g.temperature_c, g.errors) == (None, 50, {})


# -- XID events ----------------------------------------------------------------------------------
def test_xids_are_read_in_the_order_they_happened_each_under_its_gpu():
    clock = Clock()
    reader = reader_for(spec({}, {}, {}, {}, {}, {}, events=[
        {"after_s": 0, "gpu": 5, "xid": 79},
        {"after_s": 0, "gpu": 2, "xid": 13},   # a tie keeps the file's order
        {"after_s": 3, "gpu": 0, "xid": 48},
        {"after_s": 4, "gpu": 5, "xid": 94},
        {"after_s": 20, "gpu": 1, "xid": 31},
    ]), clock)

    assert reader.read().xids == [(5, 79), (2, 13)]
    clock.advance(10)
    assert reader.read().xids == [(0, 48), (5, 94)]
    clock.advance(10)
    assert reader.read().xids == [(1, 31)]


def test_an_xid_is_read_once():
    clock = Clock()
    reader = reader_for(spec({}, {}, events=[{"after_s": 0, "gpu": 1, "xid": 79}]), clock)

    assert reader.read().xids == [(1, 79)]
    clock.advance(10)
    assert reader.read().xids == []


def test_xids_polled_between_reads_are_kept_for_the_next_read():
    clock = Clock()
    reader = reader_for(spec({}, {}, events=[{"after_s": 5, "gpu": 1, "xid": 79},
                                             {"after_s": 7, "gpu": 0, "xid": 48}]), clock)
    reader.read()
    clock.advance(5)
    assert reader.poll_events(0) == [(1, 79)]
    clock.advance(2)
    assert reader.poll_events(1000) == [(0, 48)]  # the fake with an injected clock never sleeps
    assert reader.poll_events(1000) == []

    assert reader.read().xids == [(1, 79), (0, 48)]


def test_an_xid_queued_before_the_reader_starts_is_still_seen():
    reading = read_once("dgx-h200-xid79.json")  # XID 79 at after_s 0, before the event set exists

    assert reading.xids == [(3, 79)]


# -- the node cannot be read at all --------------------------------------------------------------
@pytest.mark.parametrize("init_error, error", [
    ("library_not_found", "library-not-found"),
    ("driver_not_loaded", "driver-not-loaded"),
    ("lib_rm_version_mismatch", "driver-library-mismatch"),
])
def test_an_nvml_that_cannot_start_is_an_error_not_zero_gpus(init_error, error):
    reader = reader_for(spec({}, {}, init_error=init_error))

    for _ in range(2):  # tried again at every read, never raised
        reading = reader.read()
        assert reading == NodeReading(error=error)
    assert reader.opened is False


def test_the_no_driver_fixture_reads_as_driver_not_loaded():
    assert read_once("no-driver.json").error == "driver-not-loaded"


# -- one GPU fails -------------------------------------------------------------------------------
def test_a_gpu_lost_at_start_is_lost_and_nothing_else_is_read():
    reading = read_once(spec({"temperature_c": 50}, {"temperature_c": 51, "power_mw": 1, "lost": True}))

    assert readings_of(reading.gpus[1]) == GpuReading(index=1, lost=True)
    assert reading.gpus[0].temperature_c == 50 and reading.gpus[0].lost is False


def test_a_gpu_lost_mid_session_is_lost_and_nothing_else_is_read():
    clock = Clock()
    reader = reader_for(spec({"temperature_c": 50}, {"temperature_c": 51, "ecc_volatile_dbe": 0},
                             events=[{"after_s": 30, "gpu": 1, "set": {"lost": True}}]), clock)
    assert reader.read().gpus[1].temperature_c == 51

    clock.advance(30)
    reading = reader.read()

    assert readings_of(reading.gpus[1]) == GpuReading(index=1, lost=True)
    assert reading.error == "" and reading.gpus[0].temperature_c == 50


def test_an_xid_on_a_gpu_that_is_lost_afterwards_is_still_seen():
    clock = Clock()
    reader = reader_for(spec({}, {}, events=[{"after_s": 5, "gpu": 1, "xid": 79},
                                             {"after_s": 5, "gpu": 1, "set": {"lost": True}}]), clock)
    reader.read()
    clock.advance(10)
    reading = reader.read()

    assert reading.xids == [(1, 79)]
    assert reading.gpus[1].lost is True


def test_a_timed_out_call_leaves_that_reading_absent_and_noted():
    clock = Clock()
    reader = reader_for(spec(H200["gpus"][0] | {"index": 0}, events=[{"after_s": 5, "gpu": 0, "timeout": True}]),
                        clock)
    reader.read()
    clock.advance(10)

    g = reader.read().gpus[0]

    assert len(g.errors) == 1 and list(g.errors.values()) == ["Timeout"]
    assert g.lost is False  # a slow call is not a lost GPU
    # one call timed out; the readings after it were read as usual
    assert (g.memory_total_bytes, g.utilization_gpu, g.temperature_c, g.power_mw) == (150754820096, 97, 58, 652310)
    assert len(g.ecc) == 4

    clock.advance(10)
    again = reader.read().gpus[0]
    assert again.errors == {}
    assert again.uuid == H200["gpus"][0]["uuid"]


# -- a driver reset ------------------------------------------------------------------------------
def reset_spec() -> dict[str, Any]:
    return spec({"ecc_volatile_sbe": 4, "ecc_volatile_dbe": 1, "ecc_aggregate_dbe": 1, "remapped_rows_pending": True},
                {"temperature_c": 60},
                events=[{"after_s": 5, "gpu": 1, "xid": 79},
                        {"after_s": 20, "gpu": 1, "set": {"lost": True}},
                        {"after_s": 85, "gpu": 0, "xid": 48},
                        {"after_s": 90, "reset": True}])


def test_a_driver_reset_ends_the_session_and_the_next_read_reopens_it():
    clock = Clock()
    reader = reader_for(reset_spec(), clock)
    assert reader.read().reopened is False
    clock.advance(30)
    assert reader.read().gpus[1].lost is True

    clock.advance(60)  # the reset at 90
    reading = reader.read()

    assert reading.reopened is True
    assert reading.error == ""
    g0, g1 = reading.gpus
    assert g0.ecc == {("single", "volatile"): 0, ("double", "volatile"): 0, ("double", "aggregate"): 1}
    assert g0.remapped_rows_pending is False  # applied by the reset
    assert g1.lost is False and g1.temperature_c == 60  # back on the bus

    clock.advance(10)
    assert reader.read().reopened is False  # said once


def test_xids_from_before_a_reset_are_not_seen_again_after_it():
    clock = Clock()
    reader = reader_for(reset_spec(), clock)
    assert reader.read().xids == []
    clock.advance(10)
    assert reader.read().xids == [(1, 79)]

    clock.advance(80)  # XID 48 at 85 happened, then the reset at 90 tore the session down
    after = reader.read()

    assert after.reopened is True
    assert after.xids == []


def test_a_reset_seen_while_waiting_for_events_reopens_at_the_next_read():
    clock = Clock()
    reader = reader_for(reset_spec(), clock)
    reader.read()
    clock.advance(90)

    assert reader.poll_events(1000) == []  # the wait hears Uninitialized; never raises
    assert reader.opened is False
    reading = reader.read()

    assert reading.reopened is True
    assert [g.lost for g in reading.gpus] == [False, False]


def test_the_first_open_is_not_a_reopen():
    reader = reader_for(spec({}, events=[{"after_s": 0, "reset": True}]))

    assert reader.read().reopened is False


def test_close_ends_the_session_and_a_later_read_opens_a_new_one():
    clock = Clock()
    reader = reader_for(spec({"temperature_c": 50}), clock)
    reader.read()
    reader.close()
    assert reader.opened is False

    reading = reader.read()

    assert reading.gpus[0].temperature_c == 50
    assert reader.opened is True
