"""Every hand edit of what the daemon manages, and what the next reconcile does about it
(docs/security.md, "What a reconcile puts back").

Each test plays someone editing the cluster through the official client or the real kubectl (the
sandbox has no RBAC: whoever holds the rights, an operator, a custom role, a leaked token), then
the daemon's next reconcile, and checks that the managed value is back, the revert is counted in
`gpu_scheduler_drift_reverted_total{kind}` and reported with a Warning `DriftReverted` Event.

Tests that fail state the behaviour the review expects and the code does not have yet: they are
the findings listed at the end of docs/security.md.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta

import pytest
from kubernetes.client.exceptions import ApiException

from tests.security.conftest import PREFIX, Cluster

LG, LG_NS, UPSTAGE_NS = "lg", "lg-exaone", "upstage-solar"


# -- namespace labels and annotation ------------------------------------------------------------------
@pytest.mark.parametrize("key, forged", [
    ("quota-gpus", "9999"),
    ("quota-h100", "4096"),
    ("quota-b200", "4096"),
    ("status", "active-forever"),
    ("stage", "stage-9"),
    ("allocated-gpus", "0"),
    ("consortium", "upstage"),
    ("quota-gpus", None),  # removed
])
def test_an_edited_namespace_label_is_put_back_and_counted(cluster: Cluster, key, forged):
    before = cluster.ns_labels(LG_NS)
    cluster.core.patch_namespace(LG_NS, {"metadata": {"labels": {PREFIX + key: forged}}})
    assert cluster.ns_labels(LG_NS).get(key) == forged

    cluster.reconcile()

    assert cluster.ns_labels(LG_NS) == before
    assert cluster.drift("namespace") == 1
    drift_events = cluster.events(LG_NS, "DriftReverted")
    assert len(drift_events) == 1 and drift_events[0]["type"] == "Warning"
    assert not cluster.events(LG_NS, "QuotaChanged")  # a revert is not news about the quota
    assert cluster.reconcile().writes == 0


def test_a_quota_label_for_a_model_outside_the_policy_is_removed_and_counted(cluster: Cluster):
    before = cluster.ns_labels(LG_NS)
    cluster.core.patch_namespace(LG_NS, {"metadata": {"labels": {PREFIX + "quota-a100": "4096"}}})

    cluster.reconcile()

    assert cluster.ns_labels(LG_NS) == before
    assert cluster.drift("namespace") == 1


def test_an_edited_allocation_annotation_is_put_back(cluster: Cluster):
    before = cluster.ns_annotation(LG_NS, "allocation")
    forged = before.replace('"target":{"B200":16,"H100":24}', '"target":{"B200":512,"H100":512}')
    assert forged != before
    cluster.core.patch_namespace(LG_NS, {"metadata": {"annotations": {PREFIX + "allocation": forged}}})

    cluster.reconcile()

    assert cluster.ns_annotation(LG_NS, "allocation") == before
    assert cluster.reconcile().writes == 0


def test_an_edit_that_includes_the_allocation_annotation_is_still_counted_as_drift(cluster: Cluster):
    """Editing the annotation along with the labels and the quota must not pass the revert off as a
    change of plan: it is counted and reported as drift, not as QuotaChanged (finding 3)."""
    cluster.advance(minutes=5)
    cluster.core.patch_namespace(LG_NS, {"metadata": {"labels": {PREFIX + "quota-gpus": "9999"},
                                                      "annotations": {PREFIX + "allocation": "{}"}}})
    cluster.core.patch_namespaced_resource_quota(
        "gpu-scheduler", LG_NS, {"spec": {"hard": {"requests.nvidia.com/gpu": "9999"}}})

    cluster.reconcile()

    assert cluster.ns_labels(LG_NS)["quota-gpus"] == "40" and cluster.quota_hard(LG_NS) == "40"
    assert cluster.drift("namespace") == 1 and cluster.drift("quota") == 1
    assert len(cluster.events(LG_NS, "DriftReverted")) == 1
    assert not cluster.events(LG_NS, "QuotaChanged")


# -- the ResourceQuota ---------------------------------------------------------------------------------
def test_a_raised_resourcequota_is_lowered_again_and_counted(cluster: Cluster):
    cluster.core.patch_namespaced_resource_quota(
        "gpu-scheduler", LG_NS, {"spec": {"hard": {"requests.nvidia.com/gpu": "9999"}}})

    cluster.reconcile()

    assert cluster.quota_hard(LG_NS) == "40"
    assert cluster.drift("quota") == 1
    assert len(cluster.events(LG_NS, "DriftReverted")) == 1
    assert not cluster.events(LG_NS, "QuotaChanged")


def test_a_deleted_resourcequota_is_created_again_and_counted(cluster: Cluster):
    cluster.core.delete_namespaced_resource_quota("gpu-scheduler", LG_NS)
    with pytest.raises(ApiException):
        cluster.core.read_namespaced_resource_quota("gpu-scheduler", LG_NS)

    cluster.reconcile()

    assert cluster.quota_hard(LG_NS) == "40"
    assert cluster.quota(LG_NS)["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gpu-scheduler"}
    assert cluster.drift("quota") == 1


def test_another_resourcequota_in_the_namespace_is_left_alone(cluster: Cluster):
    """A stricter quota an operator adds is theirs; Kubernetes enforces every quota of a namespace."""
    cluster.core.create_namespaced_resource_quota(LG_NS, {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-cap"},
        "spec": {"hard": {"requests.nvidia.com/gpu": "8"}}})

    assert cluster.reconcile().writes == 0
    assert cluster.server.get("resourcequotas", "gpu-cap", LG_NS)["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}


# -- nodes ----------------------------------------------------------------------------------------------
def test_relabelling_a_node_to_another_consortium_does_not_move_it(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"metadata": {"labels": {PREFIX + "consortium": "upstage"}}})

    outcome = cluster.reconcile()

    assert outcome.plan.node_intents[node].owner == LG
    assert cluster.node_label(node, "consortium") == LG
    assert cluster.node_label(node, "node-state") == "assigned"
    assert cluster.our_taints(node) == {(PREFIX + "consortium", LG, "NoSchedule")}
    assert cluster.quota_hard(LG_NS) == "40" and cluster.quota_hard(UPSTAGE_NS) == "24"
    assert not cluster.events(LG_NS, "NodeDraining") and not cluster.events(UPSTAGE_NS, "NodeDraining")
    assert cluster.drift("node") == 1
    assert len(cluster.events(LG_NS, "DriftReverted")) == 1
    assert cluster.reconcile().writes == 0


def test_removing_the_consortium_label_of_a_busy_node_does_not_release_it_without_a_drain(
        cluster: Cluster, policy_dir):
    """The taint still names the owner, so the node stays LG's. Here LG is above its new target at
    the same time: the daemon must drain a node (idle ones first), never turn the node where LG's
    job runs free and untainted at once, job still on it, for the next team to be given (finding 1)."""
    node = cluster.nodes_of(LG)[-1]
    cluster.run_gpu_pod(LG_NS, "pretrain-0", node)
    stages = policy_dir / "stages.yaml"
    stages.write_text(stages.read_text().replace("lg: {H100: 24, B200: 16}", "lg: {H100: 16, B200: 16}"))
    assert cluster.reconciler.source.reload().changed  # a new stage lowers LG's H100 quota
    cluster.patch_node(node, {"metadata": {"labels": {PREFIX + "consortium": None}}})

    outcome = cluster.reconcile()

    assert outcome.plan.node_intents[node].owner == LG
    assert cluster.node_label(node, "consortium") == LG
    assert (PREFIX + "consortium", LG, "NoSchedule") in cluster.our_taints(node)
    assert cluster.node_label(node, "node-state") != "free"
    assert cluster.drift("node") == 1


def test_removing_the_consortium_taint_puts_it_back_and_counts_it(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"spec": {"taints": []}})
    assert cluster.our_taints(node) == set()

    cluster.reconcile()

    assert cluster.our_taints(node) == {(PREFIX + "consortium", LG, "NoSchedule")}
    assert cluster.node_label(node, "consortium") == LG
    assert cluster.drift("node") == 1


def test_a_foreign_taint_survives_the_revert(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"spec": {"taints": [{"key": "example.com/maintenance", "value": "bios",
                                                   "effect": "NoSchedule"}]}})

    cluster.reconcile()

    taints = {(t_["key"], t_.get("value", "")) for t_ in cluster.node(node)["spec"]["taints"]}
    assert taints == {(PREFIX + "consortium", LG), ("example.com/maintenance", "bios")}


def test_setting_an_assigned_node_free_by_hand_is_put_back_and_counted(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"metadata": {"labels": {PREFIX + "node-state": "free"}}})

    cluster.reconcile()

    assert cluster.node_label(node, "node-state") == "assigned"
    assert cluster.drift("node") == 1


# -- a draining node ------------------------------------------------------------------------------------
def _draining_node(cluster: Cluster) -> tuple[str, str]:
    """An LG node an operator cordoned while a training job runs on it: it drains (taint, deadline)
    and waits for the job or its deadline. Returns the node and its drain deadline."""
    node = cluster.nodes_of(LG)[0]
    cluster.run_gpu_pod(LG_NS, "pretrain-0", node)
    cluster.patch_node(node, {"spec": {"unschedulable": True}})
    cluster.reconcile()
    assert cluster.node_label(node, "node-state") == "draining"
    assert (PREFIX + "draining", "true", "NoSchedule") in cluster.our_taints(node)
    deadline = cluster.node_annotation(node, "drain-deadline")
    assert datetime.fromisoformat(deadline) == cluster.clock.now() + timedelta(hours=2)
    assert cluster.reconcile().writes == 0
    cluster.advance(minutes=30)  # half an hour into the drain, someone edits the node
    return node, deadline


@pytest.mark.parametrize("edit", [
    pytest.param({"spec": {"taints": [{"key": PREFIX + "consortium", "value": LG, "effect": "NoSchedule"},
                                      {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}},
                 id="draining-taint-removed"),
    pytest.param({"metadata": {"labels": {PREFIX + "node-state": "assigned"}}}, id="node-state-set-assigned"),
    pytest.param({"metadata": {"annotations": {PREFIX + "drain-deadline": None}}}, id="drain-deadline-removed"),
    pytest.param({"metadata": {"annotations": {PREFIX + "drain-deadline": "2099-01-01T00:00:00+09:00"}}},
                 id="drain-deadline-postponed"),
    pytest.param({"metadata": {"annotations": {PREFIX + "drain-started": "2099-01-01T00:00:00+09:00"}}},
                 id="drain-started-forged-later"),
    pytest.param({"metadata": {"annotations": {PREFIX + "drain-started": "2000-01-01T00:00:00+09:00"}}},
                 id="drain-started-forged-earlier"),
    pytest.param({"metadata": {"annotations": {PREFIX + "drain-started": None, PREFIX + "drain-deadline": None}}},
                 id="drain-clock-deleted"),
])
def test_an_edited_draining_node_keeps_draining_towards_the_same_deadline(cluster: Cluster, edit):
    """The drain clock is the controller's: the annotations report it (so a restart resumes it),
    and an edit of them, a forged start, or deleting both, neither restarts, stops, postpones nor
    hastens it: the deadline stays the planned start + drainTimeout and the pod is not evicted early."""
    node, deadline = _draining_node(cluster)
    started = cluster.node_annotation(node, "drain-started")
    cluster.patch_node(node, edit)

    cluster.reconcile()

    assert cluster.node_label(node, "node-state") == "draining"
    assert (PREFIX + "draining", "true", "NoSchedule") in cluster.our_taints(node)
    assert (PREFIX + "consortium", LG, "NoSchedule") in cluster.our_taints(node)
    assert cluster.node_annotation(node, "drain-started") == started
    assert cluster.node_annotation(node, "drain-deadline") == deadline
    assert cluster.drift("node") == 1
    assert cluster.server.get("pods", "pretrain-0", LG_NS) is not None  # nobody evicted before the deadline


# -- forged telemetry -----------------------------------------------------------------------------------
def _h100_healthy(outcome) -> int:
    return next(p.healthy_gpus for p in outcome.plan.pools if p.name == "h100")


def test_forged_telemetry_claiming_more_gpus_than_allocatable_adds_no_capacity(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"metadata": {"annotations": {PREFIX + "telemetry": cluster.telemetry(16, total=16)}}})

    outcome = cluster.reconcile()

    assert _h100_healthy(outcome) == 64  # 8 nodes x 8 allocatable GPUs, not 8 more
    assert outcome.plan.consortium(LG).allocated == {"H100": 24, "B200": 16}
    assert outcome.writes == 0
    assert cluster.quota_hard(LG_NS) == "40"


def test_fresh_telemetry_can_lower_a_nodes_capacity(cluster: Cluster):
    """The counterpart of the test above: the agent's report is read, downwards only."""
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"metadata": {"annotations": {PREFIX + "telemetry": cluster.telemetry(5)}}})

    assert _h100_healthy(cluster.reconcile()) == 61


def test_a_forged_report_of_no_healthy_gpu_drains_the_node(cluster: Cluster):
    """Why the agent's node-patch right matters (docs/security.md, "The node agent"): a report can
    only lower capacity, but a node lowered to zero is taken back from its team, drained, and
    its GPU pods are evicted at the deadline."""
    node = cluster.nodes_of(LG)[0]
    cluster.run_gpu_pod(LG_NS, "pretrain-0", node)
    cluster.patch_node(node, {"metadata": {"annotations": {PREFIX + "telemetry": cluster.telemetry(0)}}})

    cluster.reconcile()

    assert cluster.node_label(node, "node-state") == "draining"
    assert cluster.node_annotation(node, "drain-reason") == "taken back: node has no healthy GPU"


@pytest.mark.parametrize("report", [
    pytest.param(lambda c: c.telemetry(0, age=timedelta(hours=1)), id="stale"),
    pytest.param(lambda c: c.telemetry(0, error="driver-not-loaded"), id="nvml-error"),
    pytest.param(lambda c: '{"version": 1, "healthy_gpus": 0', id="malformed"),
    pytest.param(lambda c: c.telemetry(0).replace("+09:00", ""), id="timestamp-without-zone"),
])
def test_stale_or_invalid_telemetry_is_ignored(cluster: Cluster, report):
    node = cluster.nodes_of(LG)[0]
    cluster.patch_node(node, {"metadata": {"annotations": {PREFIX + "telemetry": report(cluster)}}})

    outcome = cluster.reconcile()

    assert _h100_healthy(outcome) == 64
    assert outcome.writes == 0 and cluster.node_label(node, "node-state") == "assigned"


# -- with the real kubectl ------------------------------------------------------------------------------
def _kubectl(kubectl, cluster: Cluster, *args: str) -> str:
    return subprocess.run([str(kubectl), "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def test_kubectl_label_of_a_quota_is_reverted_and_kubectl_shows_the_real_value(cluster: Cluster, kubectl):
    _kubectl(kubectl, cluster, "label", "ns", LG_NS, f"{PREFIX}quota-gpus=9999", "--overwrite")
    columns = f"{PREFIX}status,{PREFIX}quota-gpus,{PREFIX}allocated-gpus"

    def row() -> list[str]:
        out = _kubectl(kubectl, cluster, "get", "ns", LG_NS, "-L", columns)
        return out.splitlines()[1].split()

    assert row()[-3:] == ["active", "9999", "40"]
    cluster.reconcile()
    assert row()[-3:] == ["active", "40", "40"]
    assert cluster.drift("namespace") == 1


def test_kubectl_relabel_and_untaint_of_a_node_are_reverted(cluster: Cluster, kubectl):
    node = cluster.nodes_of(LG)[0]
    _kubectl(kubectl, cluster, "label", "node", node, f"{PREFIX}consortium=upstage", "--overwrite")
    cluster.reconcile()
    _kubectl(kubectl, cluster, "taint", "node", node, f"{PREFIX}consortium:NoSchedule-")
    cluster.reconcile()

    out = _kubectl(kubectl, cluster, "get", "node", node, "-L", f"{PREFIX}consortium,{PREFIX}node-state")
    assert out.splitlines()[1].split()[-2:] == [LG, "assigned"]
    assert cluster.our_taints(node) == {(PREFIX + "consortium", LG, "NoSchedule")}
    assert cluster.drift("node") == 2
