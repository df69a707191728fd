"""wire/allocation.py: the `allocation` annotation on each consortium namespace, the plan for that
team as compact JSON (docs/planning.md, "What a consortium engineer sees"). The actuator compares
it with what is live byte for byte, so the same allocation must always give the same bytes."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.wire.allocation import Allocation, NextChange, decode, encode
from tests.wire.strategies import words

MODELS = st.sampled_from(["H100", "H200", "B200", "units"])
per_model = st.dictionaries(MODELS, st.integers(0, 100_000), max_size=4)
next_changes = st.builds(NextChange, at=st.text(max_size=30), what=st.text(max_size=60))
allocations = st.builds(
    Allocation,
    consortium=words,
    status=st.sampled_from(["active", "pending", "ineligible", "winding-down", "eliminated"]),
    stage=st.none() | words,
    quota=per_model, target=per_model, allocated=per_model, shortfall=per_model,
    nodes=st.integers(0, 10_000), draining_nodes=st.integers(0, 10_000),
    next_change=st.none() | next_changes,
)

ROUND_1 = Allocation(consortium="lg-exaone", status="active", stage="round-1", quota={"H100": 64, "B200": 32},
                     target={"H100": 64, "B200": 32}, allocated={"H100": 56, "B200": 32}, shortfall={"H100": 8},
                     nodes=11, draining_nodes=1,
                     next_change=NextChange(at="2026-07-01T00:00:00+09:00", what="stage round-2 begins"))


# -- the round trip -----------------------------------------------------------------------------------
@given(allocations)
def test_every_allocation_survives_encode_and_decode(a):
    assert decode(encode(a)) == a


def test_an_allocation_with_only_the_required_fields_keeps_its_defaults():
    a = decode('{"consortium":"lg-exaone","status":"eliminated"}')
    assert a == Allocation(consortium="lg-exaone", status="eliminated")
    assert (a.stage, a.quota, a.nodes, a.next_change) == (None, {}, 0, None)


# -- byte-stable: sorted keys, compact separators -------------------------------------------------------
def test_the_encoding_has_sorted_keys_and_no_whitespace():
    assert encode(ROUND_1) == (
        '{"allocated":{"B200":32,"H100":56},"consortium":"lg-exaone","draining_nodes":1,'
        '"next_change":{"at":"2026-07-01T00:00:00+09:00","what":"stage round-2 begins"},"nodes":11,'
        '"pending_stage":null,"quota":{"B200":32,"H100":64},"short":{},"short_reason":null,'
        '"shortfall":{"H100":8},"stage":"round-1","status":"active",'
        '"target":{"B200":32,"H100":64}}')


@given(allocations)
def test_every_encoding_is_canonical_json(a):
    """Sorted keys at every level and compact separators: re-spelling it canonically changes nothing."""
    text = encode(a)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


@given(allocations, st.randoms())
def test_the_order_quotas_were_filled_in_does_not_change_the_bytes(a, rng):
    """An unchanged plan must give identical bytes, so no write, however its dicts were built."""

    def shuffled(d: dict[str, int]) -> dict[str, int]:
        items = list(d.items())
        rng.shuffle(items)
        return dict(items)

    same = msgspec.structs.replace(a, quota=shuffled(a.quota), target=shuffled(a.target),
                                   allocated=shuffled(a.allocated), shortfall=shuffled(a.shortfall))
    assert encode(same) == encode(a)


@given(allocations)
def test_decoding_and_encoding_again_gives_the_same_bytes(a):
    text = encode(a)
    assert encode(decode(text)) == text


# -- an annotation someone edited --------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "", "not json", "null", "[]", '"lg-exaone"',
    '{"status":"active"}',                                      # no consortium
    '{"consortium":"lg-exaone"}',                               # no status
    '{"consortium":1,"status":"active"}',                       # a number for a name
    '{"consortium":"a","status":"active","quota":{"H100":"64"}}',   # a string for a count
    '{"consortium":"a","status":"active","nodes":-1.5}',
    '{"consortium":"a","status":"active","next_change":{"at":"2026-07-01"}}',  # no `what`
])
def test_a_malformed_allocation_raises_value_error(text):
    with pytest.raises(ValueError, match="not an allocation annotation"):
        decode(text)


def test_the_error_is_a_plain_value_error_not_a_msgspec_one():
    """Callers (`gpu-scheduler status`, drift detection) catch ValueError only."""
    with pytest.raises(ValueError) as failure:
        decode("{")
    assert not isinstance(failure.value, msgspec.MsgspecError)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_keys_a_newer_scheduler_adds_are_ignored():
    data = json.loads(encode(ROUND_1))
    data["borrowed"] = {"H100": 8}
    assert decode(json.dumps(data)) == ROUND_1
