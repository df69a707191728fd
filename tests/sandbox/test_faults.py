"""Fault injection: sequences, seeded fractions, each status with its Status body, slow answers,
expired watches, and the counts."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox import Fault, Faults

from .conftest import node, raw


def outcome(call) -> int:
    try:
        call()
        return 200
    except ApiException as e:
        return e.status


def test_a_sequence_is_served_in_order_then_requests_pass(core, server):
    core.create_node(node("n1"))
    server.faults.add(verb="patch", resource="nodes", sequence=[409, None, 500])
    results = [outcome(lambda i=i: core.patch_node("n1", {"metadata": {"labels": {"a": str(i)}}}))
               for i in range(5)]
    assert results == [409, 200, 500, 200, 200]
    assert server.faults.counts == {("patch", "nodes", "409"): 1, ("patch", "nodes", "500"): 1}


def test_faults_match_only_their_verb_and_resource(core, server):
    core.create_node(node("n1"))
    server.faults.add(verb="list", resource="pods", sequence=[500])
    assert outcome(lambda: core.list_node()) == 200
    assert outcome(lambda: core.read_node("n1")) == 200
    assert outcome(lambda: core.list_pod_for_all_namespaces()) == 500


def test_a_fraction_is_deterministic_for_a_seed():
    def draws(seed: int) -> list[bool]:
        faults = Faults(seed)
        faults.add(verb="get", fraction=0.3, fault=500)
        return [faults.pick("get", "nodes") is not None for _ in range(200)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert 40 <= sum(draws(7)) <= 80


def test_a_fraction_through_the_server(core, server):
    core.create_node(node("n1"))
    server.faults.add(verb="get", resource="nodes", fraction=0.5, fault=500)
    results = [outcome(lambda: core.read_node("n1")) for _ in range(40)]
    assert set(results) == {200, 500}
    assert results.count(500) == server.faults.injected(500, verb="get")


def test_429_has_retry_after_header_and_details(server):
    server.faults.add(verb="list", sequence=[Fault(429, retry_after=7)])
    status, headers, body = raw(server, "GET", "/api/v1/nodes")
    assert status == 429 and headers["retry-after"] == "7"
    status_body = json.loads(body)
    assert status_body["reason"] == "TooManyRequests"
    assert status_body["details"] == {"retryAfterSeconds": 7}


@pytest.mark.parametrize("code,reason", [(409, "Conflict"), (410, "Expired"), (500, "InternalError")])
def test_each_status_has_its_reason(server, code, reason):
    server.put(node("n1"))
    server.faults.add(verb="update", sequence=[code])
    status, _, body = raw(server, "PUT", "/api/v1/nodes/n1", node("n1"))
    assert status == code and json.loads(body)["reason"] == reason
    assert json.loads(body)["code"] == code


def test_a_409_on_create_is_already_exists(server):
    server.faults.add(verb="create", resource="nodes", sequence=[409])
    status, _, body = raw(server, "POST", "/api/v1/nodes", node("n1"))
    assert status == 409 and json.loads(body)["reason"] == "AlreadyExists"


def test_a_410_on_watch_expires_the_watch(core, server):
    server.faults.add(verb="watch", resource="nodes", sequence=[410])
    with pytest.raises(ApiException) as e:
        list(watch.Watch().stream(core.list_node, timeout_seconds=5))
    assert e.value.status == 410
    assert server.faults.injected(410, verb="watch") == 1


def test_kubernetes_watch_resumes_once_after_an_expired_watch(core, server):
    rv = core.create_node(node("n1")).metadata.resource_version
    server.faults.add(verb="watch", resource="nodes", sequence=[410])
    core.create_node(node("n2"))
    w = watch.Watch()
    for ev in w.stream(core.list_node, resource_version=rv):  # no timeout: the client retries
        assert (ev["type"], ev["object"].metadata.name) == ("ADDED", "n2")
        w.stop()
    assert server.requests[("watch", "nodes")] == 2


def test_a_slow_answer_is_delayed(core, server):
    server.faults.add(verb="list", resource="nodes", sequence=[Fault.slow(0.3)])
    began = time.monotonic()
    core.list_node()
    assert time.monotonic() - began >= 0.3
    assert server.faults.injected("slow") == 1


def test_clear_removes_every_rule(core, server):
    server.faults.add(fraction=1.0, fault=500)
    assert outcome(core.list_node) == 500
    server.faults.clear()
    assert outcome(core.list_node) == 200


def test_rules_from_data_as_the_cli_reads_them():
    faults = Faults.from_spec([
        {"verb": "patch", "resource": "nodes", "sequence": [409, None]},
        {"verb": "get", "fraction": 1, "fault": {"status": 429, "retry_after": 3}},
        {"fraction": 1, "fault": {"delay": 0.01}},
    ])
    assert faults.pick("patch", "nodes") == Fault(409)
    assert faults.pick("patch", "nodes") is None
    assert faults.pick("get", "pods") == Fault(429, retry_after=3)
    assert faults.pick("list", "pods") == Fault(delay=0.01)


def test_bad_rules_are_refused():
    faults = Faults()
    with pytest.raises(ValueError):
        faults.add(sequence=[404])
    with pytest.raises(ValueError):
        faults.add(fraction=0.5)
    with pytest.raises(ValueError):
        faults.add(sequence=[409], fraction=0.5, fault=409)
    with pytest.raises(ValueError):
        Faults.from_spec([{"verbs": "get"}])
