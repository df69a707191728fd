"""wire/telemetry.py: the telemetry annotation a node agent writes on its own Node and the
controller's snapshot decoder reads (docs/telemetry.md). What the agent puts in a report is
tested in tests/telemetry/; here, only the format: every report survives the trip, the JSON is
compact and deterministic, older controllers read what newer agents add, and the committed JSON
Schema is the one the types generate."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.wire import telemetry
from scheduler.wire.telemetry import SCHEMA_PATH, GpuReport, TelemetryReport, decode, encode, json_schema
from tests.wire.strategies import instants

AT = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
SCHEMA = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
FIELDS = ["version", "timestamp", "driver_version", "total_gpus", "healthy_gpus", "gpus", "error"]

gpus = st.builds(
    GpuReport,
    index=st.integers(0, 15),
    uuid=st.text(max_size=40),
    name=st.text(max_size=20),
    healthy=st.booleans(),
    reason=st.sampled_from(["", "xid-79", "xid-48", "ecc-dbe", "lost", "timeout"]),
    utilization=st.none() | st.floats(0, 1),
    memory_used_bytes=st.none() | st.integers(0, 2**40),
    memory_total_bytes=st.none() | st.integers(0, 2**40),
)
reports = st.builds(
    TelemetryReport,
    version=st.just(telemetry.VERSION),
    timestamp=instants(whole_seconds=True).map(telemetry.utc_now_stamp),
    driver_version=st.sampled_from(["", "580.65.06", "535.129.03"]),
    total_gpus=st.integers(0, 16),
    healthy_gpus=st.integers(0, 16),
    gpus=st.lists(gpus, max_size=8),
    error=st.sampled_from(["", "driver-not-loaded", "no-permission"]),
)


def report(**changes) -> TelemetryReport:
    fields = {"version": 1, "timestamp": AT, "total_gpus": 8, "healthy_gpus": 8, **changes}
    return TelemetryReport(**fields)


# -- the round trip -----------------------------------------------------------------------------------
@given(reports)
def test_every_report_survives_encode_and_decode(r):
    assert decode(encode(r)) == r


@given(reports)
def test_every_encoded_report_validates_against_the_committed_schema(r):
    SCHEMA.validate(json.loads(encode(r)))


@given(instants())
def test_a_timestamp_in_any_offset_decodes_to_the_same_instant(at):
    decoded = decode(encode(report(timestamp=at))).timestamp
    assert decoded == at and decoded.tzinfo is not None


# -- what the JSON looks like ---------------------------------------------------------------------------
def test_the_agents_utc_whole_second_timestamp_is_spelt_with_z():
    assert json.loads(encode(report()))["timestamp"] == "2026-11-30T05:00:00Z"


@given(reports)
def test_the_json_is_compact_with_every_field_in_declaration_order(r):
    text = encode(r)
    assert list(json.loads(text)) == FIELDS
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    assert not re.search(r"\s", outside_strings)  # no whitespace between tokens
    assert encode(decode(text)) == text  # the same report, the same bytes: no needless write


def test_a_report_with_one_failed_gpu_reads_as_expected():
    text = encode(report(driver_version="580.65.06", healthy_gpus=7, gpus=[
        GpuReport(index=3, uuid="GPU-3", name="NVIDIA H200", healthy=False, reason="xid-79", utilization=0.0,
                  memory_used_bytes=0, memory_total_bytes=150754820096)]))
    assert text == (
        '{"version":1,"timestamp":"2026-11-30T05:00:00Z","driver_version":"580.65.06","total_gpus":8,'
        '"healthy_gpus":7,"gpus":[{"index":3,"uuid":"GPU-3","name":"NVIDIA H200","healthy":false,'
        '"reason":"xid-79","utilization":0.0,"memory_used_bytes":0,"memory_total_bytes":150754820096}],'
        '"error":""}')


def test_a_freezegun_style_datetime_subclass_is_encoded_like_a_datetime():
    """msgspec encodes datetime itself but not its subclasses (freezegun's FakeDatetime in tests):
    those go through the encoder's hook, which spells them as the agent does."""

    class FakeDatetime(datetime):
        pass

    stamp = FakeDatetime(2026, 11, 30, 14, 0, tzinfo=timezone(timedelta(hours=9)))
    assert json.loads(encode(report(timestamp=stamp)))["timestamp"] == "2026-11-30T05:00:00Z"


# -- decoding what someone else wrote ------------------------------------------------------------------
def test_keys_a_newer_agent_adds_are_ignored():
    data = json.loads(encode(report()))
    data["power_watts"] = 5600
    data["gpus"] = [{"index": 0, "uuid": "GPU-0", "healthy": True, "temperature_c": 41}]
    assert decode(json.dumps(data)) == report(gpus=[GpuReport(index=0, uuid="GPU-0", healthy=True)])


def test_only_the_required_fields_are_needed():
    assert decode('{"version":1,"timestamp":"2026-11-30T05:00:00Z","total_gpus":8,"healthy_gpus":8}') == report()


def test_a_timestamp_without_a_timezone_is_refused():
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        decode('{"version":1,"timestamp":"2026-11-30T05:00:00","total_gpus":8,"healthy_gpus":8}')


@pytest.mark.parametrize("text", ['{"version":1', "", "null", "[]",
                                  '{"version":1,"total_gpus":8,"healthy_gpus":8}',
                                  '{"version":1,"timestamp":"2026-11-30T05:00:00Z","total_gpus":"8","healthy_gpus":8}'])
def test_a_malformed_annotation_raises_a_msgspec_error(text):
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode(text)


# -- helpers beside the format -----------------------------------------------------------------------
def test_utc_now_stamp_is_utc_at_whole_seconds():
    at = datetime(2026, 11, 30, 14, 0, 7, 654_321, tzinfo=timezone(timedelta(hours=9)))
    assert telemetry.utc_now_stamp(at) == datetime(2026, 11, 30, 5, 0, 7, tzinfo=UTC)
    assert telemetry.utc_now_stamp(at).utcoffset() == timedelta(0)


def test_utilization_is_the_mean_over_healthy_gpus_that_report_one():
    r = report(gpus=[GpuReport(index=0, uuid="a", healthy=True, utilization=0.2),
                     GpuReport(index=1, uuid="b", healthy=True, utilization=0.6),
                     GpuReport(index=2, uuid="c", healthy=True),  # not supported
                     GpuReport(index=3, uuid="d", healthy=False, reason="xid-79", utilization=0.0)])
    assert r.utilization == pytest.approx(0.4)
    assert report().utilization is None


# -- the committed schema ----------------------------------------------------------------------------
def test_the_committed_schema_is_the_one_the_report_types_generate():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), \
        "scheduler/wire/telemetry.schema.json is stale: regenerate with python -m scheduler.wire.telemetry"
    assert SCHEMA_PATH == Path(telemetry.__file__).with_name("telemetry.schema.json")  # beside its types
