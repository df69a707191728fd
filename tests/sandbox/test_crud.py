"""create / get / list / update / delete through the official client, with the apiserver's
status codes and Status bodies."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox import SandboxServer

from .conftest import CONSORTIUM, node, pod, raw


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_create_returns_201_with_uid_timestamp_and_a_string_resource_version(core, server):
    created, code, _ = core.create_node_with_http_info(body=node("b200-0001"))
    assert code == 201
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.resource_version == str(server.resource_version)


def test_resource_versions_increase_globally_across_resources(core):
    a = core.create_node(node("n-a")).metadata.resource_version
    b = core.create_namespace({"metadata": {"name": "lg-exaone"}}).metadata.resource_version
    c = core.patch_node("n-a", {"metadata": {"labels": {"x": "1"}}}).metadata.resource_version
    assert int(a) < int(b) < int(c)


def test_get_returns_what_was_created(core):
    core.create_node(node("n1", {CONSORTIUM: "lg"}, gpus=8))
    got = core.read_node("n1")
    assert got.metadata.labels[CONSORTIUM] == "lg"
    assert got.status.allocatable["nvidia.com/gpu"] == "8"
    assert got.kind == "Node" and got.api_version == "v1"


def test_get_missing_is_404_not_found_status(core):
    with pytest.raises(ApiException) as e:
        core.read_node("nope")
    assert e.value.status == 404
    assert status_of(e.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'nodes "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "kind": "nodes"}, "code": 404}


def test_create_twice_is_409_already_exists(core):
    core.create_node(node("n1"))
    with pytest.raises(ApiException) as e:
        core.create_node(node("n1"))
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "AlreadyExists"


def test_generate_name_appends_five_random_characters(core):
    made = core.create_namespaced_pod("default", {"metadata": {"generateName": "train-"},
                                                  "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert made.metadata.name.startswith("train-") and len(made.metadata.name) == len("train-") + 5
    assert made.metadata.generate_name == "train-"


def test_name_or_generate_name_is_required(core):
    with pytest.raises(ApiException) as e:
        core.create_node({"metadata": {}})
    assert e.value.status == 422
    body = status_of(e.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_an_invalid_label_value_is_422_invalid(core):
    with pytest.raises(ApiException) as e:
        core.create_node(node("n1", {CONSORTIUM: "not a label value"}))
    assert e.value.status == 422
    assert "metadata.labels" in status_of(e.value)["message"]


def test_creating_in_a_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("ghost", pod("p", "ghost"))
    assert e.value.status == 404
    assert status_of(e.value)["message"] == 'namespaces "ghost" not found'


def test_list_carries_the_current_resource_version_and_sorted_items(core, server):
    for name in ("n3", "n1", "n2"):
        core.create_node(node(name))
    listed = core.list_node()
    assert [n.metadata.name for n in listed.items] == ["n1", "n2", "n3"]
    assert listed.metadata.resource_version == str(server.resource_version)


def test_list_across_namespaces_and_in_one(core):
    core.create_namespace({"metadata": {"name": "lg"}})
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("lg", pod("b", "lg"))
    assert {p.metadata.name for p in core.list_pod_for_all_namespaces().items} == {"a", "b"}
    assert [p.metadata.name for p in core.list_namespaced_pod("lg").items] == ["b"]


def test_limit_and_continue_page_through_a_list(core):
    for i in range(7):
        core.create_node(node(f"n{i}"))
    names, token = [], None
    while True:
        page = core.list_node(limit=3, _continue=token)
        names += [n.metadata.name for n in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(names)
    assert names == [f"n{i}" for i in range(7)]


def test_update_with_the_current_resource_version_succeeds(core):
    n = core.create_node(node("n1"))
    n.metadata.labels = {CONSORTIUM: "upstage"}
    updated = core.replace_node("n1", n)
    assert updated.metadata.labels == {CONSORTIUM: "upstage"}
    assert int(updated.metadata.resource_version) > int(n.metadata.resource_version)


def test_update_with_a_stale_resource_version_is_409_conflict(core):
    stale = core.create_node(node("n1"))
    core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    stale.metadata.labels = {"a": "c"}
    with pytest.raises(ApiException) as e:
        core.replace_node("n1", stale)
    assert e.value.status == 409
    body = status_of(e.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on nodes "n1": the object has been '
                               'modified; please apply your changes to the latest version and try again')


def test_update_without_resource_version_is_unconditional(core):
    core.create_node(node("n1"))
    body = node("n1", {"k": "v"})
    assert core.replace_node("n1", body).metadata.labels == {"k": "v"}


def test_update_of_main_resource_keeps_status_and_status_update_keeps_spec(core):
    core.create_node(node("n1", gpus=8))
    body = core.read_node("n1")
    body.status.allocatable["nvidia.com/gpu"] = "4"
    body.spec.unschedulable = True
    after = core.replace_node("n1", body)
    assert after.status.allocatable["nvidia.com/gpu"] == "8" and after.spec.unschedulable
    body = core.read_node("n1")
    body.status.allocatable["nvidia.com/gpu"] = "4"
    body.spec.unschedulable = False
    after = core.replace_node_status("n1", body)
    assert after.status.allocatable["nvidia.com/gpu"] == "4" and after.spec.unschedulable


def test_an_update_that_changes_nothing_writes_nothing(core, server):
    n = core.create_node(node("n1"))
    before = server.resource_version
    again = core.replace_node("n1", core.read_node("n1"))
    assert again.metadata.resource_version == n.metadata.resource_version
    assert server.resource_version == before


def test_update_name_must_match_the_url(core):
    core.create_node(node("n1"))
    with pytest.raises(ApiException) as e:
        core.replace_node("n1", node("n2"))
    assert e.value.status == 400 and status_of(e.value)["reason"] == "BadRequest"


def test_delete_of_a_node_answers_a_success_status(core, server):
    core.create_node(node("n1"))
    raw = core.delete_node("n1", _preload_content=False)
    body = json.loads(raw.data)
    assert body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["name"] == "n1"
    assert server.get("nodes", "n1") is None


def test_delete_of_a_pod_answers_the_pod(core):
    core.create_namespaced_pod("default", pod("p"))
    body = json.loads(core.delete_namespaced_pod("p", "default", _preload_content=False).data)
    assert body["kind"] == "Pod" and body["metadata"]["name"] == "p"


def test_delete_missing_is_404(core):
    with pytest.raises(ApiException) as e:
        core.delete_node("nope")
    assert e.value.status == 404


def test_delete_precondition_on_resource_version_is_409(core):
    core.create_node(node("n1"))
    with pytest.raises(ApiException) as e:
        core.delete_node("n1", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version="1")))
    assert e.value.status == 409


def test_finalizers_hold_a_deleted_object_until_removed(core, server):
    core.create_namespaced_pod("default", {**pod("p"), "metadata": {"name": "p", "finalizers": ["x/y"]}})
    core.delete_namespaced_pod("p", "default")
    held = core.read_namespaced_pod("p", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": None}},
                              _content_type="application/merge-patch+json")
    assert server.get("pods", "p", "default") is None


def test_deleting_a_namespace_deletes_what_is_in_it(core, server):
    core.create_namespace({"metadata": {"name": "nc"}})
    core.create_namespaced_pod("nc", pod("p", "nc"))
    answered = core.delete_namespace("nc", _preload_content=False)
    assert json.loads(answered.data)["status"]["phase"] == "Terminating"
    assert server.get("namespaces", "nc") is None and server.list("pods", "nc") == []


def test_delete_collection_with_a_label_selector(core):
    for i, team in enumerate(["lg", "lg", "skt"]):
        core.create_namespaced_pod("default", pod(f"p{i}", labels={"team": team}))
    core.delete_collection_namespaced_pod("default", label_selector="team=lg")
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["p2"]


def test_new_namespaces_are_active_and_labelled_with_their_name(core):
    ns = core.create_namespace({"metadata": {"name": "upstage-solar"}})
    assert ns.status.phase == "Active"
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "upstage-solar"
    assert ns.spec.finalizers == ["kubernetes"]


def test_a_new_pod_starts_pending_whatever_status_it_was_sent_with(core):
    body = pod("p")
    body["status"] = {"phase": "Running"}
    assert core.create_namespaced_pod("default", body).status.phase == "Pending"


def test_pod_status_is_written_through_the_status_subresource(core):
    core.create_namespaced_pod("default", pod("p", node_name="n1"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert core.read_namespaced_pod("p", "default").status.phase == "Running"


def test_resource_quota_status_hard_follows_spec_hard(core):
    core.create_namespaced_resource_quota("default", {
        "metadata": {"name": "gpu-scheduler"}, "spec": {"hard": {"requests.nvidia.com/gpu": "512"}}})
    core.patch_namespaced_resource_quota("gpu-scheduler", "default",
                                         {"spec": {"hard": {"requests.nvidia.com/gpu": "256"}}})
    q = core.read_namespaced_resource_quota("gpu-scheduler", "default")
    assert q.status.hard == {"requests.nvidia.com/gpu": "256"}


def test_leases_round_trip_through_the_coordination_api(api, server):
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("kube-system", {
        "metadata": {"name": "gpu-scheduler"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15,
                 "renewTime": "2026-01-15T00:00:00.000000Z"}})
    lease.spec.holder_identity = "pod-b"
    coord.replace_namespaced_lease("gpu-scheduler", "kube-system", lease)
    assert server.get("leases", "gpu-scheduler", "kube-system")["spec"]["holderIdentity"] == "pod-b"
    lease.spec.holder_identity = "pod-c"  # stale: the replace above moved the version on
    with pytest.raises(ApiException) as e:
        coord.replace_namespaced_lease("gpu-scheduler", "kube-system", lease)
    assert e.value.status == 409


def test_dry_run_validates_but_stores_nothing(core, server):
    core.create_node(node("n1"), dry_run="All")
    assert server.get("nodes", "n1") is None


def test_write_counters_count_successful_writes_by_verb_and_resource(core, server):
    core.create_node(node("n1"))
    core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    core.patch_node_status("n1", {"status": {"allocatable": {"nvidia.com/gpu": "7"}}})
    core.read_node("n1")
    assert server.writes == {("create", "nodes"): 1, ("patch", "nodes"): 1, ("patch", "nodes/status"): 1}
    assert server.requests[("get", "nodes")] == 1


def test_unknown_paths_are_404_and_wrong_methods_405(server):
    status, _, body = raw(server, "GET", "/api/v1/widgets")
    assert status == 404 and json.loads(body)["reason"] == "NotFound"
    status, _, body = raw(server, "DELETE", "/api/v1/nodes/n1/status")
    assert status == 405 and json.loads(body)["reason"] == "MethodNotAllowed"
    status, _, body = raw(server, "POST", "/api/v1/nodes", b"{not json",
                          {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["reason"] == "BadRequest"


def test_direct_store_access_for_tests(server: SandboxServer):
    server.put(node("n1", {CONSORTIUM: "lg"}))
    server.put(node("n2"))
    assert [n["metadata"]["name"] for n in server.list("nodes", label_selector=CONSORTIUM)] == ["n1"]
    assert server.get("nodes", "n1")["kind"] == "Node"
    assert server.count("nodes") == 2
    assert server.writes == {}
