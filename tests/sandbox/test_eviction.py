"""pods/eviction: the Eviction API deletes the pod; injected 429s look like a disruption budget."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import pod


def eviction(name: str, namespace: str = "default") -> client.V1Eviction:
    return client.V1Eviction(api_version="policy/v1", kind="Eviction",
                             metadata=client.V1ObjectMeta(name=name, namespace=namespace))


def test_eviction_deletes_the_pod_and_answers_201(core, server):
    core.create_namespaced_pod("default", pod("train-0", node_name="b200-0001", gpus=8))
    raw = core.create_namespaced_pod_eviction("train-0", "default", eviction("train-0"),
                                              _preload_content=False)
    assert raw.status == 201
    assert json.loads(raw.data) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "code": 201}
    assert server.get("pods", "train-0", "default") is None
    assert server.writes[("create", "pods/eviction")] == 1


def test_evicting_a_missing_pod_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_eviction("ghost", "default", eviction("ghost"))
    assert e.value.status == 404


def test_eviction_name_must_match_the_url(core):
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_eviction("a", "default", eviction("b"))
    assert e.value.status == 400


def test_an_injected_429_is_a_disruption_budget_refusal_with_retry_after(core, server):
    core.create_namespaced_pod("default", pod("a"))
    server.faults.add(verb="create", resource="pods/eviction", sequence=[429])
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_eviction("a", "default", eviction("a"))
    assert e.value.status == 429
    assert e.value.headers["Retry-After"] == "1"
    body = json.loads(e.value.body)
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert server.get("pods", "a", "default") is not None
    core.create_namespaced_pod_eviction("a", "default", eviction("a"))  # the sequence is used up
    assert server.get("pods", "a", "default") is None


def test_eviction_of_a_pod_with_finalizers_marks_it_for_deletion(core, server):
    body = pod("a")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    core.create_namespaced_pod("default", body)
    core.create_namespaced_pod_eviction("a", "default", eviction("a"))
    assert server.get("pods", "a", "default")["metadata"]["deletionTimestamp"]
