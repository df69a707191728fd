"""Decoding takes one pass where it can (each node's labels and annotations read as it is parsed)
and two otherwise (the general pass, which also explains a bad file). Both give the same snapshot
of any list hypothesis draws: nodes with any labels, annotations, taints and conditions, mixed
with namespaces, quotas and pods, in kubectl's List or an API server's typed list."""

from __future__ import annotations

import json
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cluster import Keys, decode_snapshot
from scheduler.cluster.decode import _build, _parse
from tests.cluster.test_snapshot_decode import a_list, namespace, node, pod, quota
from tests.keys import KEYS

PREFIX = KEYS.prefix
SELECTOR = "nvidia.com/gpu.product"
TOPOLOGY = "nvidia.com/gpu.clique"
READING = KEYS.reading({SELECTOR, TOPOLOGY, "pool"})

texts = st.text(max_size=6)
label_keys = st.sampled_from(
    [SELECTOR, TOPOLOGY, "pool", f"{PREFIX}/consortium", f"{PREFIX}/node-state", "kubernetes.io/hostname", "zone"]
)
annotation_keys = st.sampled_from(
    [f"{PREFIX}/drain-started", f"{PREFIX}/drain-deadline", f"{PREFIX}/drain-reason", f"{PREFIX}/telemetry",
     f"{PREFIX}/other", "node.alpha.kubernetes.io/ttl"]
)
annotation_values = st.one_of(
    texts,
    st.just("2026-03-01T00:00:00Z"),
    st.just('{"healthy_gpus": 7, "utilization": 0.5, "timestamp": "2026-03-01T00:00:00Z"}'),
)
taints = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from([f"{PREFIX}/consortium", "nvidia.com/gpu"]), "effect": st.sampled_from(["NoSchedule", "NoExecute"])},
        optional={"value": st.sampled_from(["lg", "skt", ""])},
    ),
    max_size=3,
)


@st.composite
def nodes(draw: st.DrawFn, name: str, kind: str | None) -> dict:
    return node(
        name,
        gpus=draw(st.sampled_from(["8", "4", "0", 8, None])),
        ready=draw(st.sampled_from(["True", "False", "Unknown", None])),
        unschedulable=draw(st.sampled_from([None, True, False])),
        labels=draw(st.dictionaries(label_keys, st.one_of(texts, st.just("lg"), st.just("assigned")), max_size=6)),
        annotations=draw(st.dictionaries(annotation_keys, annotation_values, max_size=4)),
        taints=draw(st.one_of(st.none(), taints)),
        kind=kind,
    )


def general(data: bytes, keys: Keys):
    return _build(_parse(data), keys)


def one_pass(data: bytes, keys: Keys, list_kind: str = ""):
    """decode_snapshot, failing should it fall back to the general pass."""
    with mock.patch("scheduler.cluster.decode._parse", side_effect=AssertionError("took the general pass")):
        return decode_snapshot(data, keys, list_kind)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from([KEYS, READING]))
def test_a_kubectl_list_decodes_the_same_in_one_pass_as_in_two(data, keys):
    count = data.draw(st.integers(0, 6))
    items = [data.draw(nodes(f"n{i}", "Node")) for i in range(count)]
    items += [namespace("lg-exaone", {f"{PREFIX}/quota": "8", "team": "lg"}, {f"{PREFIX}/allocation": "{}", "x": "y"}),
              quota("lg-exaone", "gpu-scheduler", {"requests.nvidia.com/gpu": "16"}),
              pod("p", containers=[{"requests": {"nvidia.com/gpu": "2"}}])]
    data.draw(st.randoms()).shuffle(items)
    raw = a_list(*items)
    assert one_pass(raw, keys) == general(raw, keys)


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from([KEYS, READING]))
def test_an_api_servers_node_list_decodes_the_same_in_one_pass_as_in_two(data, keys):
    items = [data.draw(nodes(f"n{i}", None)) for i in range(data.draw(st.integers(0, 6)))]
    raw = a_list(*items, kind="NodeList")
    assert one_pass(raw, keys, "NodeList") == general(raw, keys) == decode_snapshot(raw, keys)


def test_what_one_pass_does_not_take_goes_to_the_general_pass_and_its_errors():
    odd = a_list(node("a", kind=None), {"kind": "Service", "metadata": {"name": "s"}}, node("b"))
    assert [n.name for n in decode_snapshot(odd, READING).nodes] == ["b"]  # a kind-less item and a Service: ignored
    bad = json.loads(a_list(node("a", labels={SELECTOR: 8})))
    try:
        decode_snapshot(json.dumps(bad).encode(), READING)
    except ValueError as err:
        assert "a: metadata.labels" in str(err)
    else:
        raise AssertionError("a label that is not a string was taken")
