"""Events: one store behind core/v1 and events.k8s.io/v1, and the apiserver's Event validation."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException


def core_event(name: str, namespace: str, involved_ns: str | None) -> dict:
    involved = {"kind": "Namespace", "name": "lg-exaone", "apiVersion": "v1"}
    if involved_ns is not None:
        involved["namespace"] = involved_ns
    return {"metadata": {"name": name}, "involvedObject": involved, "reason": "QuotaChanged",
            "message": "B200 512", "type": "Normal", "source": {"component": "gpu-scheduler"}}


def new_event(name: str) -> dict:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
            "eventTime": "2026-01-15T00:00:00.000000Z", "reportingController": "gpu-scheduler",
            "reportingInstance": "gpu-scheduler-0", "action": "Reconcile", "reason": "StageEntered",
            "regarding": {"kind": "Namespace", "name": "lg-exaone", "namespace": "lg-exaone"},
            "note": "stage-2", "type": "Normal"}


@pytest.fixture
def lg(core):
    core.create_namespace({"metadata": {"name": "lg-exaone"}})


def test_an_event_created_through_events_v1_is_listed_by_core_v1(api, core, lg):
    client.EventsV1Api(api).create_namespaced_event("lg-exaone", new_event("e1"))
    [ev] = core.list_namespaced_event("lg-exaone").items
    assert (ev.reason, ev.message, ev.reporting_component) == ("StageEntered", "stage-2", "gpu-scheduler")
    assert ev.involved_object.name == "lg-exaone"


def test_a_core_event_is_read_through_events_v1(api, core, lg):
    core.create_namespaced_event("lg-exaone", core_event("e1", "lg-exaone", "lg-exaone"))
    # read raw: like kube-apiserver, the sandbox answers `"eventTime": null` for a legacy Event,
    # which the official client's EventsV1Event model refuses to deserialize
    raw = client.EventsV1Api(api).read_namespaced_event("e1", "lg-exaone", _preload_content=False)
    ev = json.loads(raw.data)
    assert ev["apiVersion"] == "events.k8s.io/v1" and ev["eventTime"] is None
    assert (ev["note"], ev["regarding"]["kind"], ev["deprecatedSource"]["component"]) == \
        ("B200 512", "Namespace", "gpu-scheduler")


def test_events_v1_field_selectors_use_its_field_names(api, lg):
    events = client.EventsV1Api(api)
    events.create_namespaced_event("lg-exaone", new_event("e1"))
    got = events.list_namespaced_event("lg-exaone", field_selector="regarding.name=lg-exaone")
    assert [e.metadata.name for e in got.items] == ["e1"]


def test_a_legacy_event_must_live_in_its_objects_namespace(core, lg):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_event("default", core_event("e1", "default", "lg-exaone"))
    assert e.value.status == 422 and "involvedObject.namespace" in e.value.body


def test_a_legacy_event_about_a_cluster_object_lives_in_default(core, lg):
    core.create_namespaced_event("default", core_event("ok", "default", None))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_event("lg-exaone", core_event("bad", "lg-exaone", None))
    assert e.value.status == 422


def test_events_v1_requires_the_new_fields(api, lg):
    body = new_event("e1")
    del body["reportingInstance"], body["action"]
    with pytest.raises(ApiException) as e:
        client.EventsV1Api(api).create_namespaced_event("lg-exaone", body)
    assert e.value.status == 422
    assert "reportingInstance" in e.value.body and "action" in e.value.body


def test_put_creates_a_missing_event(core, lg):
    body = core_event("e1", "lg-exaone", "lg-exaone")
    body["metadata"]["namespace"] = "lg-exaone"
    _, code, _ = core.replace_namespaced_event_with_http_info("e1", "lg-exaone", body)
    assert code == 201
