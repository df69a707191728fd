"""The command line's JSON is json.dumps(indent=2), byte for byte, however it is produced."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cli.render import pretty_json

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()  # no float: plans hold none
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                         max_leaves=30)


@settings(max_examples=500)
@given(documents)
def test_pretty_json_is_the_standard_librarys_indented_json(doc):
    assert pretty_json(doc) == json.dumps(doc, indent=2)


def test_korean_text_is_escaped_as_the_standard_library_does():
    doc = {"displayName": "엘지 AI 연구원", "gpus": [8, 16], "short": {}}
    assert pretty_json(doc) == json.dumps(doc, indent=2) and pretty_json(doc).isascii()


def test_plans_and_timelines_hold_no_float():
    """What pretty_json relies on: msgspec and the standard library format floats differently
    (1e16 against 1e+16, NaN against null). Plans are made of counts, names and instants."""
    from scheduler.cluster import decode_snapshot
    from scheduler.cluster.synthetic import builtin_cluster, dumps
    from scheduler.planner.simulate import simulate
    from scheduler.policy import load_policy
    from tests.builders import t
    from tests.keys import KEYS

    policy = load_policy("policies")
    steps = simulate(policy, decode_snapshot(dumps(builtin_cluster(policy)), KEYS), t("2025-08-01 00:00"),
                     t("2027-01-31 00:00"), KEYS)

    def floats(x):
        if isinstance(x, float):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from floats(v)
        elif isinstance(x, list):
            for v in x:
                yield from floats(v)

    assert not [f for s in steps for f in floats(s.plan.to_dict())]
