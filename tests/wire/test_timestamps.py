"""wire/timestamps.py: RFC 3339 instants on Kubernetes objects (drain annotations, Event and
telemetry timestamps). Two spellings are written, any offset is read, and text without an
offset is not an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.wire import timestamps
from tests.wire.strategies import instants, offsets

KST = timezone(timedelta(hours=9))


# -- encode: the instant in its own offset ---------------------------------------------------------
@given(instants())
def test_an_instant_survives_encode_and_decode_in_its_own_offset(at):
    decoded = timestamps.decode(timestamps.encode(at))
    assert decoded == at
    assert decoded.utcoffset() == at.utcoffset()  # the offset people read is kept, not just the instant


def test_encode_spells_the_instant_in_its_own_offset():
    """The drain annotations are read by people in the programme's timezone."""
    assert timestamps.encode(datetime(2026, 1, 15, 15, 0, tzinfo=KST)) == "2026-01-15T15:00:00+09:00"


# -- encode_utc: UTC at second precision, as metav1.Time --------------------------------------------
@given(instants())
def test_encode_utc_keeps_the_instant_to_the_second(at):
    decoded = timestamps.decode(timestamps.encode_utc(at))
    assert decoded == at.replace(microsecond=0)
    assert decoded.utcoffset() == timedelta(0)


def test_encode_utc_spells_utc_with_z_and_drops_fractions_of_a_second():
    at = datetime(2026, 1, 15, 15, 0, 0, 999_999, tzinfo=KST)
    assert timestamps.encode_utc(at) == "2026-01-15T06:00:00Z"


# -- naive datetimes are not instants ---------------------------------------------------------------
@pytest.mark.parametrize("encode", [timestamps.encode, timestamps.encode_utc])
def test_a_naive_datetime_cannot_be_encoded(encode):
    with pytest.raises(ValueError, match="timezone-aware"):
        encode(datetime(2026, 1, 15, 15, 0))


@pytest.mark.parametrize("text", ["2026-01-15T15:00:00", "2026-01-15 15:00:00", "2026-01-15"])
def test_text_without_an_offset_decodes_to_none(text):
    """Whose 15:00? A drain deadline without an offset would be a guess, so it is not read at all."""
    assert timestamps.decode(text) is None


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z", "2026-01-15T25:00:00+09:00"])
def test_empty_or_malformed_text_decodes_to_none(text):
    assert timestamps.decode(text) is None


# -- decode reads every RFC 3339 offset ---------------------------------------------------------------
@pytest.mark.parametrize("text", ["2026-01-15T06:00:00Z", "2026-01-15T06:00:00z", "2026-01-15T06:00:00+00:00",
                                  "2026-01-15T15:00:00+09:00", "2026-01-14T22:00:00-08:00"])
def test_every_spelling_of_one_instant_decodes_to_it(text):
    assert timestamps.decode(text) == datetime(2026, 1, 15, 6, 0, tzinfo=UTC)


def test_fractions_of_a_second_are_read():
    assert timestamps.decode("2026-01-15T06:00:00.250Z") == datetime(2026, 1, 15, 6, 0, 0, 250_000, tzinfo=UTC)


# -- same_instant ----------------------------------------------------------------------------------------
def test_z_and_plus_nine_hours_spellings_of_one_instant_are_the_same_instant():
    assert timestamps.same_instant("2026-01-15T06:00:00Z", "2026-01-15T15:00:00+09:00")


def test_different_instants_are_not_the_same_instant():
    assert not timestamps.same_instant("2026-01-15T06:00:00Z", "2026-01-15T06:00:01Z")
    assert not timestamps.same_instant("2026-01-15T15:00:00Z", "2026-01-15T15:00:00+09:00")


def test_identical_text_is_the_same_instant_even_when_it_is_not_one():
    """What is live equals what would be written: nothing to write, whatever the text says."""
    assert timestamps.same_instant("not a time", "not a time")


@pytest.mark.parametrize("other", ["not a time", "2026-01-15T06:00:00", ""])
def test_text_that_is_no_instant_is_never_the_same_instant_as_another_text(other):
    assert not timestamps.same_instant("2026-01-15T06:00:00Z", other)
    assert not timestamps.same_instant(other, "2026-01-15T06:00:00Z")


@given(instants(whole_seconds=True), offsets)
def test_both_spellings_and_any_offset_of_an_instant_are_the_same_instant(at, offset):
    own, utc = timestamps.encode(at), timestamps.encode_utc(at)
    elsewhere = timestamps.encode(at.astimezone(offset))
    assert timestamps.same_instant(own, utc)
    assert timestamps.same_instant(utc, elsewhere)
    assert timestamps.same_instant(elsewhere, own)


@given(instants(), st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)))
def test_instants_apart_are_never_the_same_instant(at, apart):
    assert not timestamps.same_instant(timestamps.encode(at), timestamps.encode(at + apart))
