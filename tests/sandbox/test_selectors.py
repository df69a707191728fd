"""Label and field selectors: the grammar, Kubernetes' matching rules, and through the client."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.resources import NODES, PODS
from scheduler.sandbox.selectors import parse_field_selector, parse_label_selector

from .conftest import CONSORTIUM, node, pod

LABELS = {"team": "lg", "tier": "b200", "x": ""}


@pytest.mark.parametrize("selector,matches", [
    ("", True),
    ("team=lg", True), ("team==lg", True), ("team=skt", False),
    ("team!=skt", True), ("team!=lg", False), ("missing!=a", True),
    ("team in (lg, skt)", True), ("team in (skt)", False), ("missing in (a)", False),
    ("team notin (skt,nc)", True), ("team notin (lg)", False), ("missing notin (a)", True),
    ("team", True), ("missing", False), ("!missing", True), ("!team", False),
    ("team=lg,tier=b200", True), ("team=lg,tier=h100", False),
    ("team=lg, tier in (b200,h200), !gone", True),
    ("x=", True), ("x", True),
    ("gpu-scheduler.sovereign-ai.kr/consortium", False),
])
def test_label_selector_semantics(selector: str, matches: bool):
    assert parse_label_selector(selector).matches(LABELS) is matches


def test_greater_and_less_than_compare_integers():
    assert parse_label_selector("gpus>4").matches({"gpus": "8"})
    assert not parse_label_selector("gpus<4").matches({"gpus": "8"})
    assert not parse_label_selector("gpus>4").matches({"gpus": "many"})


@pytest.mark.parametrize("bad", ["team in lg", "=lg", "team in ()", "team=lg,", "a b", "team=(x"])
def test_malformed_label_selectors_are_400(bad: str):
    with pytest.raises(ApiError) as e:
        parse_label_selector(bad)
    assert e.value.code == 400


def test_field_selectors_on_name_and_namespace_and_pod_fields():
    p = pod("a", "lg", node_name="b200-0001")
    assert parse_field_selector("metadata.name=a,metadata.namespace=lg", PODS).matches(p)
    assert parse_field_selector("spec.nodeName==b200-0001", PODS).matches(p)
    assert not parse_field_selector("spec.nodeName!=b200-0001", PODS).matches(p)
    assert parse_field_selector("spec.unschedulable=false", NODES).matches(node("n"))


def test_field_selector_values_unescape():
    sel = parse_field_selector(r"metadata.name=a\,b\=c", NODES)
    assert sel.matches({"metadata": {"name": "a,b=c"}})


def test_unknown_field_labels_are_400():
    with pytest.raises(ApiError) as e:
        parse_field_selector("status.capacity=8", NODES)
    assert e.value.code == 400 and "field label not supported" in e.value.message
    with pytest.raises(ApiError):
        parse_field_selector("metadata.namespace=x", NODES)  # nodes have no namespace


def test_selectors_through_the_client(core):
    core.create_node(node("n1", {CONSORTIUM: "lg"}))
    core.create_node(node("n2", {CONSORTIUM: "skt"}))
    core.create_node(node("n3"))

    def names(**kw) -> list[str]:
        return [n.metadata.name for n in core.list_node(**kw).items]

    assert names(label_selector=f"{CONSORTIUM}=lg") == ["n1"]
    assert names(label_selector=f"{CONSORTIUM} in (lg,skt)") == ["n1", "n2"]
    assert names(label_selector=f"{CONSORTIUM} notin (lg)") == ["n2", "n3"]
    assert names(label_selector=f"!{CONSORTIUM}") == ["n3"]
    assert names(label_selector=CONSORTIUM) == ["n1", "n2"]
    assert names(label_selector=f"{CONSORTIUM}!=skt") == ["n1", "n3"]
    assert names(field_selector="metadata.name=n2") == ["n2"]
    assert names(field_selector="metadata.name!=n2", label_selector=CONSORTIUM) == ["n1"]


def test_pods_on_a_node_by_field_selector(core):
    core.create_namespaced_pod("default", pod("a", node_name="b200-0001"))
    core.create_namespaced_pod("default", pod("b", node_name="b200-0002"))
    got = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=b200-0002")
    assert [p.metadata.name for p in got.items] == ["b"]


def test_a_bad_selector_through_the_client_is_400(core):
    with pytest.raises(ApiException) as e:
        core.list_node(label_selector="a in b")
    assert e.value.status == 400
    with pytest.raises(ApiException) as e:
        core.list_node(field_selector="spec.nope=1")
    assert e.value.status == 400
