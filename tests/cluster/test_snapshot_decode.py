"""Decoding what `kubectl get nodes,namespaces,resourcequotas,pods -A -o json` prints into the
planner's Snapshot (docs/planning.md, "Node capacity"; docs/daemon.md, "The Kubernetes contract as
implemented")."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from scheduler.cluster import GpuPod, Keys, SnapshotError, Taint, decode_snapshot, decode_snapshot_file
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.policy import load_policy
from tests.keys import KEYS

REAL_POLICY = Path(__file__).resolve().parents[2] / "policies"
PREFIX = "gpu-scheduler.sovereign-ai.kr"


def node(name: str, *, gpus="8", ready: str | None = "True", unschedulable: bool | None = None, labels=None,
         annotations=None, taints=None, kind: str | None = "Node") -> dict:
    obj: dict = {"apiVersion": "v1", "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
                 "spec": {}, "status": {"allocatable": {"cpu": "220", "nvidia.com/gpu": gpus} if gpus is not None else {"cpu": "220"},
                                        "conditions": [{"type": "MemoryPressure", "status": "False"}]}}
    if kind:
        obj["kind"] = kind
    if ready is not None:
        obj["status"]["conditions"].append({"type": "Ready", "status": ready, "reason": "KubeletReady"})
    if unschedulable is not None:
        obj["spec"]["unschedulable"] = unschedulable
    if taints is not None:
        obj["spec"]["taints"] = taints
    return obj


def pod(name: str, *, namespace="lg-exaone", node_name="b200-0001", phase="Running", containers=(), init=()) -> dict:
    def container(resources):
        return {"name": "c", "image": "nvcr.io/nvidia/pytorch:25.10-py3", "resources": resources}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node_name, "containers": [container(r) for r in containers],
                     "initContainers": [container(r) for r in init]},
            "status": {"phase": phase}}


def gpus(n, where="requests") -> dict:
    return {where: {"cpu": "4", "nvidia.com/gpu": n}}


def a_list(*items, kind="List") -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": ""}, "items": list(items)}).encode()


def quota(namespace: str, name: str, hard: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": namespace},
            "spec": {"hard": hard}, "status": {"hard": hard, "used": {k: "0" for k in hard}}}


def namespace(name: str, labels=None, annotations=None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def only_node(**kw):
    (decoded,) = decode_snapshot(a_list(node("b200-0001", **kw)), KEYS).nodes
    return decoded


def pod_gpus(**kw) -> list[int]:
    return [p.gpus for p in decode_snapshot(a_list(pod("job", **kw)), KEYS).pods]


# --- a v1 List of everything -----------------------------------------------------------------


MIXED = a_list(
    node("b200-0002"),
    namespace("lg-exaone", labels={f"{PREFIX}/consortium": "lg", "team": "exaone"},
              annotations={f"{PREFIX}/allocation": "{}", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}),
    quota("lg-exaone", "gpu-scheduler", {"requests.nvidia.com/gpu": "16", "pods": "100"}),
    quota("lg-exaone", "compute-resources", {"requests.nvidia.com/gpu": "999"}),
    quota("upstage-solar", "gpu-scheduler", {"requests.nvidia.com/gpu": 8}),
    quota("naver-hyperclova", "gpu-scheduler", {"pods": "10"}),
    pod("train-0", node_name="b200-0002", containers=[gpus("8")]),
    node("b200-0001"),
    namespace("upstage-solar"),
)


def test_a_v1_list_gives_nodes_namespaces_our_quotas_and_gpu_pods():
    snap = decode_snapshot(MIXED, KEYS)
    assert [n.name for n in snap.nodes] == ["b200-0001", "b200-0002"]  # sorted by name
    assert sorted(snap.namespaces) == ["lg-exaone", "upstage-solar"]
    assert snap.pods == (GpuPod("lg-exaone", "train-0", "b200-0002", 8, "Running"),)


def test_only_the_resource_quota_named_gpu_scheduler_is_read_for_its_hard_gpu_requests():
    snap = decode_snapshot(MIXED, KEYS)
    # compute-resources is someone else's; naver's has no GPU line; an integer is read as its string
    assert dict(snap.quotas) == {"lg-exaone": "16", "upstage-solar": "8"}


def test_a_namespace_keeps_all_its_labels_but_only_our_annotations():
    lg = decode_snapshot(MIXED, KEYS).namespaces["lg-exaone"]
    assert dict(lg.labels) == {f"{PREFIX}/consortium": "lg", "team": "exaone"}
    assert dict(lg.annotations) == {f"{PREFIX}/allocation": "{}"}


def test_a_node_list_whose_items_have_no_kind_is_a_list_of_nodes():
    raw = a_list(node("h100-0001", kind=None), node("h100-0000", kind=None), kind="NodeList")
    snap = decode_snapshot(raw, KEYS)
    assert [n.name for n in snap.nodes] == ["h100-0000", "h100-0001"]
    assert (snap.namespaces, snap.quotas, snap.pods) == ({}, {}, ())


def test_a_pod_list_whose_items_have_no_kind_is_a_list_of_pods():
    item = pod("job", containers=[gpus("2")])
    del item["kind"]
    assert [p.gpus for p in decode_snapshot(a_list(item, kind="PodList"), KEYS).pods] == [2]


def test_bytes_and_str_decode_the_same():
    assert decode_snapshot(MIXED, KEYS) == decode_snapshot(MIXED.decode(), KEYS)


def test_a_cluster_file_decodes_like_its_bytes(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_bytes(MIXED)
    assert decode_snapshot_file(str(path), KEYS) == decode_snapshot(MIXED, KEYS)


def test_an_empty_list_is_an_empty_cluster():
    assert decode_snapshot(a_list(), KEYS).nodes == ()


# --- nodes -----------------------------------------------------------------------------------


def test_a_nodes_gpus_are_its_allocatable_nvidia_com_gpu():
    assert only_node(gpus="8").allocatable_gpus == 8
    assert only_node(gpus=4).allocatable_gpus == 4
    assert only_node(gpus=None).allocatable_gpus == 0   # no device plugin: no GPUs


@pytest.mark.parametrize("gpus", ["lots", "inf", "1e400", "-8", "8.5", "9" * 5000, 10**9, -1])
def test_a_gpu_count_no_api_server_could_send_is_refused_naming_the_node(gpus):
    """An extended resource is a whole number. "inf" or 5,000 digits is a hand-made file: refused
    with the node and the field, never guessed at (or turned into a traceback)."""
    with pytest.raises(SnapshotError, match=r"^node n1: allocatable nvidia.com/gpu: .* is not a GPU count$"):
        decode_snapshot(a_list(node("n1", gpus=gpus)), KEYS)


def test_a_pods_gpu_request_no_api_server_could_send_is_refused_naming_the_pod():
    raw = a_list(pod("job", containers=[{"limits": {"nvidia.com/gpu": "inf"}}]))
    with pytest.raises(SnapshotError, match=r"^pod lg-exaone/job: nvidia.com/gpu: 'inf' is not a GPU count$"):
        decode_snapshot(raw, KEYS)


def test_two_nodes_of_one_name_are_refused_naming_them():
    """Otherwise one name would be handed to two teams at once."""
    raw = a_list(node("dup"), node("ok"), node("dup"), node("dup"), node("twice"), node("twice"))
    with pytest.raises(SnapshotError, match=r"^duplicate node names: dup \(3 times\), twice \(2 times\)$"):
        decode_snapshot(raw, KEYS)


def test_json_nested_millions_deep_is_refused_not_a_crash():
    deep = "[" * 1_000_000 + "]" * 1_000_000
    raw = ('{"kind": "List", "items": [{"kind": "Node", "metadata": {"name": "n"}, "x": ' + deep + "}]}").encode()
    with pytest.raises(SnapshotError, match="nested too deep"):
        decode_snapshot(raw, KEYS)


@pytest.mark.parametrize("condition, ready", [("True", True), ("False", False), ("Unknown", False), (None, False)])
def test_a_node_is_ready_only_when_its_ready_condition_is_true(condition, ready):
    assert only_node(ready=condition).ready is ready


@pytest.mark.parametrize("flag, cordoned", [(True, True), (False, False), (None, False)])
def test_a_cordoned_node_is_unschedulable(flag, cordoned):
    assert only_node(unschedulable=flag).unschedulable is cordoned


def test_a_nodes_taints_are_kept_with_key_value_and_effect():
    decoded = only_node(taints=[
        {"key": f"{PREFIX}/consortium", "value": "lg", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-30T05:00:00Z"},
    ])
    assert decoded.taints == (Taint(f"{PREFIX}/consortium", "lg", "NoSchedule"),
                              Taint("node.kubernetes.io/unreachable", "", "NoExecute"))


def test_a_nodes_owner_and_state_come_from_our_labels():
    decoded = only_node(labels={f"{PREFIX}/consortium": "lg", f"{PREFIX}/node-state": "draining", "pool": "b200"})
    assert (decoded.owner, decoded.state) == ("lg", "draining")
    assert decoded.labels["pool"] == "b200"
    assert decoded.draining


def test_a_node_without_our_labels_is_free_and_has_no_state():
    decoded = only_node(labels={"consortium": "lg"})  # not under our prefix: not ours
    assert (decoded.owner, decoded.state) == (None, None)


def test_drain_annotations_are_parsed_to_aware_instants():
    decoded = only_node(annotations={f"{PREFIX}/drain-started": "2026-11-30T06:00:00Z",
                                     f"{PREFIX}/drain-deadline": "2026-11-30T17:00:00+09:00"})
    assert decoded.drain_started == datetime(2026, 11, 30, 6, tzinfo=timezone.utc)
    assert decoded.drain_deadline == datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
    assert decoded.drain_deadline.utcoffset() == timedelta(hours=9)
    assert decoded.draining


def test_an_unreadable_drain_annotation_is_ignored():
    decoded = only_node(annotations={f"{PREFIX}/drain-deadline": "tomorrow"})
    assert decoded.drain_deadline is None
    assert not decoded.draining


def test_only_annotations_under_our_prefix_are_kept_on_a_node():
    decoded = only_node(annotations={f"{PREFIX}/telemetry": '{"gpus": []}', f"{PREFIX}/drain-reason": "lease-end",
                                     "node.alpha.kubernetes.io/ttl": "0", f"{PREFIX}.evil/x": "y"})
    assert dict(decoded.annotations) == {f"{PREFIX}/telemetry": '{"gpus": []}', f"{PREFIX}/drain-reason": "lease-end"}


def test_a_configured_prefix_decides_which_labels_and_annotations_are_ours():
    keys = Keys(prefix="gpus.example.org")
    raw = a_list(node("n", labels={"gpus.example.org/consortium": "lg", f"{PREFIX}/consortium": "skt"},
                      annotations={"gpus.example.org/drain-deadline": "2026-11-30T06:00:00Z", f"{PREFIX}/telemetry": "{}"}))
    (decoded,) = decode_snapshot(raw, keys).nodes
    assert decoded.owner == "lg"
    assert dict(decoded.annotations) == {"gpus.example.org/drain-deadline": "2026-11-30T06:00:00Z"}
    assert decoded.drain_deadline == datetime(2026, 11, 30, 6, tzinfo=timezone.utc)


def test_a_decoded_node_has_no_telemetry_yet_so_its_gpus_are_its_allocatable():
    decoded = only_node(gpus="8")
    assert (decoded.healthy_gpus, decoded.utilization, decoded.gpus) == (None, None, 8)


# --- pods ------------------------------------------------------------------------------------


def test_a_pods_gpus_are_the_sum_over_its_containers():
    assert pod_gpus(containers=[gpus("4"), gpus("2"), {"requests": {"cpu": "1"}}]) == [6]


def test_a_containers_gpu_limit_counts_when_it_requests_none():
    assert pod_gpus(containers=[gpus("8", "limits")]) == [8]
    assert pod_gpus(containers=[{"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}]) == [2]


def test_a_gpu_request_wins_over_the_limit():
    assert pod_gpus(containers=[{"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "4"}}]) == [2]


def test_init_containers_take_the_largest_not_the_sum():
    # Kubernetes' effective request: max(sum of containers, largest init container)
    assert pod_gpus(init=[gpus("1"), gpus("2")], containers=[gpus("4")]) == [4]
    assert pod_gpus(init=[gpus("8"), gpus("2")], containers=[gpus("4")]) == [8]
    assert pod_gpus(init=[gpus("3")], containers=[]) == [3]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_holds_no_gpus(phase):
    assert pod_gpus(phase=phase, containers=[gpus("8")]) == []


@pytest.mark.parametrize("phase, seen", [("Running", "Running"), ("Pending", "Pending"), ("Unknown", "Unknown"), ("", "Pending")])
def test_an_unfinished_pod_keeps_its_phase(phase, seen):
    (decoded,) = decode_snapshot(a_list(pod("job", phase=phase, containers=[gpus("1")])), KEYS).pods
    assert decoded.phase == seen


def test_a_pod_without_gpus_is_dropped():
    assert pod_gpus(containers=[{"requests": {"cpu": "4", "memory": "16Gi"}}]) == []
    assert pod_gpus(containers=[gpus("0")]) == []


def test_a_pod_not_yet_scheduled_has_no_node():
    (decoded,) = decode_snapshot(a_list(pod("job", node_name="", containers=[gpus("8")])), KEYS).pods
    assert decoded.node == ""
    assert decode_snapshot(a_list(pod("job", node_name="", containers=[gpus("8")])), KEYS).pods_by_node() == {}


def test_pods_are_sorted_by_node_namespace_and_name():
    raw = a_list(pod("b", node_name="n2", containers=[gpus("1")]), pod("a", node_name="n2", namespace="z", containers=[gpus("1")]),
                 pod("c", node_name="n1", containers=[gpus("1")]))
    assert [(p.node, p.namespace, p.name) for p in decode_snapshot(raw, KEYS).pods] == [
        ("n1", "lg-exaone", "c"), ("n2", "lg-exaone", "b"), ("n2", "z", "a")]


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b"[]", b'{"kind": "List", "items": {}}',
                                 b'{"kind": "List", "items": [{"metadata": {"labels": {"a": 1}}}]}'])
def test_input_that_is_not_a_kubernetes_list_in_json_is_a_snapshot_error(raw):
    with pytest.raises(SnapshotError, match="not a Kubernetes List in JSON"):
        decode_snapshot(raw, KEYS)


@pytest.mark.parametrize("kind", ["ConfigMap", "Node", ""])
def test_a_document_of_another_kind_is_a_snapshot_error_naming_it(kind):
    with pytest.raises(SnapshotError, match=f"expected kind List or NodeList, got '{kind}'"):
        decode_snapshot(json.dumps({"apiVersion": "v1", "kind": kind, "data": {"x": "y"}}), KEYS)


def test_a_snapshot_error_is_a_value_error_so_callers_can_report_it_plainly():
    assert issubclass(SnapshotError, ValueError)


def test_items_of_other_kinds_in_a_list_are_ignored():
    raw = a_list(node("n"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}})
    assert [n.name for n in decode_snapshot(raw, KEYS).nodes] == ["n"]


# --- the built-in cluster --------------------------------------------------------------------


def test_the_built_in_cluster_of_the_real_policy_has_every_pools_nodes():
    policy = load_policy(REAL_POLICY)
    snap = decode_snapshot(dumps(builtin_cluster(policy)), KEYS)
    per_pool = Counter(n.labels[f"{PREFIX}/pool"] for n in snap.nodes)
    # every pool sized: 128 + 128 + 510 + 255 + 255
    assert per_pool == {"skt-lease": 128, "naver-lease": 128, "gov-b200-a": 510, "gov-b200-b": 255, "gov-b200-c": 255}
    assert len(snap.nodes) == 1276
    assert all(n.allocatable_gpus == 8 and n.ready and not n.unschedulable and n.owner is None for n in snap.nodes)
    assert sorted(snap.namespaces) == ["lg-exaone", "motif", "naver-hyperclova", "ncai-varco", "skt-ax", "upstage-solar"]


def test_the_built_in_clusters_nodes_match_their_pools_node_selectors():
    policy = load_policy(REAL_POLICY)
    snap = decode_snapshot(dumps(builtin_cluster(policy, rich=True)), KEYS)
    for pool in policy.pools:
        matching = [n for n in snap.nodes if all(n.labels.get(k) == v for k, v in pool.nodeSelector.items())]
        assert matching and all(n.name.startswith(pool.name + "-") for n in matching), pool.name


def test_a_relabelled_node_keeps_the_owner_its_taint_names():
    """Label and taint are written together; a hand edit of the label alone moves nothing."""
    from scheduler.cluster import decode_snapshot

    item = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"gpu-scheduler.sovereign-ai.kr/consortium": "thief"}},
            "spec": {"taints": [{"key": "gpu-scheduler.sovereign-ai.kr/consortium", "value": "lg",
                                 "effect": "NoSchedule"}]},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}}}
    snap = decode_snapshot(json.dumps({"apiVersion": "v1", "kind": "List", "items": [item]}), KEYS)
    assert snap.nodes[0].owner == "lg"
    item["spec"]["taints"] = []
    snap = decode_snapshot(json.dumps({"apiVersion": "v1", "kind": "List", "items": [item]}), KEYS)
    assert snap.nodes[0].owner == "thief"  # no taint to contradict it (e.g. a taint removed by hand)


def test_keys_reading_a_few_labels_keep_those_and_ours_and_nothing_else():
    from scheduler.planner.nodes import label_keys

    policy = load_policy(REAL_POLICY)
    wanted = label_keys(policy)
    assert wanted == {"nvidia.com/gpu.product", f"{PREFIX}/pool", "nvidia.com/gpu.clique"}
    full = decode_snapshot(dumps(builtin_cluster(policy)), KEYS)
    slim = decode_snapshot(dumps(builtin_cluster(policy)), KEYS.reading(wanted))
    assert len(full.nodes[0].labels) > 20
    for a, b in zip(full.nodes, slim.nodes):
        assert dict(b.labels) == {k: v for k, v in a.labels.items() if k in wanted | {KEYS.consortium, KEYS.node_state}}
        assert b.with_(labels=a.labels) == a  # nothing else differs


@pytest.mark.parametrize("keys", [KEYS, KEYS.reading({"pool"})], ids=["all labels", "some labels"])
def test_a_label_that_is_not_a_string_is_refused_naming_the_object(keys):
    bad = {"apiVersion": "v1", "kind": "NodeList", "items": [
        {"metadata": {"name": "n1", "labels": {"pool": 8}}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}]}
    with pytest.raises(SnapshotError, match="n1: metadata.labels"):
        decode_snapshot(json.dumps(bad), keys)


def test_namespaces_keep_every_label_whatever_nodes_keep():
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "Namespace", "metadata": {"name": "lg-exaone", "labels": {"a": "1", f"{PREFIX}/quota-h100": "8"}}},
        {"kind": "Node", "metadata": {"name": "n1", "labels": {"pool": "p", "other": "x"}}}]}
    snap = decode_snapshot(json.dumps(doc), KEYS.reading({"pool"}))
    assert dict(snap.namespaces["lg-exaone"].labels) == {"a": "1", f"{PREFIX}/quota-h100": "8"}
    assert dict(snap.nodes[0].labels) == {"pool": "p"}
