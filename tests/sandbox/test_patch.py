"""The three patch types, through the official client (a list body is a JSON patch, a dict a
strategic merge patch, `_content_type` picks merge patch) and against the merge rules."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox import strategic
from scheduler.sandbox.patch import merge_patch

from .conftest import CONSORTIUM, node, pod, raw

MERGE = "application/merge-patch+json"
TAINT = {"key": CONSORTIUM, "value": "lg", "effect": "NoSchedule"}


def test_json_patch_adds_and_replaces(core):
    core.create_node(node("n1", {"a": "1"}))
    after = core.patch_node("n1", [
        {"op": "add", "path": "/metadata/labels/gpu-scheduler.sovereign-ai.kr~1consortium", "value": "lg"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
    ])
    assert after.metadata.labels == {"a": "2", CONSORTIUM: "lg"}


def test_json_patch_failed_test_op_is_422_and_changes_nothing(core, server):
    core.create_node(node("n1", {"a": "1"}))
    before = server.resource_version
    with pytest.raises(ApiException) as e:
        core.patch_node("n1", [{"op": "test", "path": "/metadata/labels/a", "value": "0"},
                               {"op": "replace", "path": "/metadata/labels/a", "value": "9"}])
    assert e.value.status == 422
    assert server.resource_version == before


def test_json_patch_that_is_not_a_list_of_operations_is_400(server):
    server.put(node("n1"))
    status, _, body = raw(server, "PATCH", "/api/v1/nodes/n1", {"op": "add"},
                          {"Content-Type": "application/json-patch+json"})
    assert status == 400 and json.loads(body)["reason"] == "BadRequest"


def test_merge_patch_null_removes_a_label_and_lists_are_replaced(core):
    core.create_node(node("n1", {"a": "1", "b": "2"}, spec={"taints": [TAINT]}))
    after = core.patch_node("n1", {"metadata": {"labels": {"a": None}},
                                   "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}},
                            _content_type=MERGE)
    assert after.metadata.labels == {"b": "2"}
    assert [t.key for t in after.spec.taints] == ["k"]


def test_strategic_merge_replaces_node_taints_as_a_whole(core):
    core.create_node(node("n1", spec={"taints": [TAINT, {"key": "other", "effect": "NoSchedule"}]}))
    after = core.patch_node("n1", {"spec": {"taints": [{"key": "new", "effect": "NoSchedule"}]}})
    assert [t.key for t in after.spec.taints] == ["new"]


def test_strategic_merge_merges_node_conditions_by_type(core):
    core.create_node(node("n1"))
    after = core.patch_node_status("n1", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
        {"type": "MemoryPressure", "status": "False"}]}})
    conditions = {c.type: (c.status, c.reason) for c in after.status.conditions}
    assert conditions == {"Ready": ("False", "KubeletNotReady"), "MemoryPressure": ("False", None)}


def test_strategic_merge_merges_containers_by_name(core):
    body = pod("p")
    body["spec"]["containers"].append({"name": "sidecar", "image": "log:1"})
    core.create_namespaced_pod("default", body)
    after = core.patch_namespaced_pod("p", "default", {"spec": {"containers": [
        {"name": "sidecar", "image": "log:2"}]}})
    assert [(c.name, c.image) for c in after.spec.containers] == [("main", "trainer:1"), ("sidecar", "log:2")]


def test_strategic_merge_patch_delete_directive_in_a_map_and_a_list(core):
    body = node("n1")
    body["metadata"]["annotations"] = {"x": "1"}
    core.create_node(body)
    core.patch_node("n1", {"metadata": {"annotations": {"$patch": "delete"}}})
    assert core.read_node("n1").metadata.annotations is None
    after = core.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}})
    assert after.status.conditions is None or after.status.conditions == []


def test_a_patch_with_a_stale_resource_version_is_409(core):
    core.create_node(node("n1"))
    with pytest.raises(ApiException) as e:
        core.patch_node("n1", {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}})
    assert e.value.status == 409


def test_a_patch_that_changes_nothing_keeps_the_resource_version(core, server):
    made = core.create_node(node("n1", {"a": "1"}))
    after = core.patch_node("n1", {"metadata": {"labels": {"a": "1"}}})
    assert after.metadata.resource_version == made.metadata.resource_version


def test_a_patch_may_not_rename_the_object(core):
    core.create_node(node("n1"))
    with pytest.raises(ApiException) as e:
        core.patch_node("n1", {"metadata": {"name": "n2"}}, _content_type=MERGE)
    assert e.value.status == 422


def test_apply_patches_are_415_unsupported(server):
    server.put(node("n1"))
    status, _, body = raw(server, "PATCH", "/api/v1/nodes/n1", b"{}",
                          {"Content-Type": "application/apply-patch+yaml"})
    assert status == 415 and json.loads(body)["reason"] == "UnsupportedMediaType"


def test_patch_of_a_missing_object_is_404(core):
    with pytest.raises(ApiException) as e:
        core.patch_node("ghost", {"metadata": {"labels": {"a": "b"}}})
    assert e.value.status == 404


# -- merge rules, without a server --------------------------------------------------------------
def test_rfc7386_examples():
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list():
    obj = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    out = strategic.apply(obj, {"metadata": {"finalizers": ["b", "c"]}}, "Pod")
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = strategic.apply(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Pod")
    assert out["metadata"]["finalizers"] == ["b", "c"]


def test_replace_directive_in_a_merge_list():
    obj = {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}
    out = strategic.apply(obj, {"status": {"conditions": [{"$patch": "replace"}, {"type": "C"}]}}, "Node")
    assert out["status"]["conditions"] == [{"type": "C"}]


def test_env_merges_by_name_inside_a_container():
    obj = {"spec": {"containers": [{"name": "m", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}
    out = strategic.apply(obj, {"spec": {"containers": [{"name": "m", "env": [{"name": "B", "value": "3"}]}]}}, "Pod")
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]


def test_retain_keys_drops_keys_not_listed():
    obj = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = strategic.apply(obj, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Pod")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_set_element_order_reorders_a_merge_list():
    obj = {"status": {"conditions": [{"type": "A"}, {"type": "B"}, {"type": "C"}]}}
    out = strategic.apply(obj, {"status": {"$setElementOrder/conditions": [{"type": "C"}, {"type": "A"}]}}, "Node")
    assert [c["type"] for c in out["status"]["conditions"]] == ["C", "A", "B"]


def test_a_merge_list_item_without_its_key_is_rejected():
    from scheduler.sandbox.errors import ApiError
    with pytest.raises(ApiError) as e:
        strategic.apply({"status": {}}, {"status": {"conditions": [{"status": "True"}]}}, "Node")
    assert e.value.code == 400


def test_unknown_lists_are_replaced_and_maps_merged():
    obj = {"spec": {"tolerations": [{"key": "a"}], "nodeSelector": {"x": "1"}}}
    out = strategic.apply(obj, {"spec": {"tolerations": [{"key": "b"}], "nodeSelector": {"y": "2"}}}, "Pod")
    assert out["spec"] == {"tolerations": [{"key": "b"}], "nodeSelector": {"x": "1", "y": "2"}}
