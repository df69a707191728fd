"""desired_writes: the smallest set of API writes that brings a cluster to its plan (pure)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from scheduler.cluster import GpuPod, Namespace, Snapshot, Taint, decode_snapshot
from tests.keys import KEYS
from scheduler.cluster.synthetic import dumps
from scheduler.actuator.writes import (MERGE_PATCH, Write, desired_writes, node_patch)
from scheduler.wire.events import name as event_name
from scheduler.planner.plan import plan
from scheduler.planner.apply import apply
from scheduler.planner.simulate import settle
from tests.builders import busy, cluster, nodes, programme, stage_yaml, t

from .conftest import MARCH_2026

H100_ONLY = ("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, topologyKey: block}",)
OUR_TAINT = Taint(KEYS.consortium, "a")
FOREIGN_TAINT = Taint("nvidia.com/gpu.health", "degraded", "NoExecute")
AT = t("2026-03-01 00:00")


def two_teams(a_quota: int = 8):
    return programme(stage_yaml("s1", "2026-01-01", "[a, b]", f"{{a: {{H100: {a_quota}}}, b: {{H100: 8}}}}"),
                     consortia="a b", pools=H100_ONLY)


def one_team():
    return programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 8}}"), consortia="a", pools=H100_ONLY)


def assigned(name_start: int, count: int, owner: str = "a"):
    """Nodes as the scheduler leaves them once assigned: label and taint of their consortium."""
    return [n.with_(taints=(Taint(KEYS.consortium, owner),))
            for n in nodes("h100", count, owner=owner, start=name_start)]


def only(writes: list[Write], resource: str) -> list[Write]:
    return [w for w in writes if w.resource == resource]


def events(writes: list[Write], reason: str | None = None) -> list[Write]:
    return [w for w in only(writes, "events") if reason is None or w.body["reason"] == reason]


def settled(policy, snapshot, at):
    """The cluster after the plan was written, and the plan made on it."""
    first = plan(policy, snapshot, at, KEYS)
    after = apply(snapshot, first, policy, KEYS)
    return plan(policy, after, at, KEYS), after


# -- steady state ----------------------------------------------------------------------------------
def test_a_cluster_that_matches_the_plan_gets_no_write(real_policy, real_cluster):
    snapshot = decode_snapshot(dumps(real_cluster), KEYS)
    first = plan(real_policy, snapshot, MARCH_2026, KEYS)
    assert len(desired_writes(first, snapshot, real_policy, KEYS)) > 1000
    again, after = settled(real_policy, snapshot, MARCH_2026)
    assert desired_writes(again, after, real_policy, KEYS) == []


@pytest.mark.parametrize("when", ["2025-08-04 00:00", "2026-01-20 00:00", "2026-02-20 00:00", "2026-07-01 00:00",
                                  "2026-08-15 00:00"])
def test_steady_state_is_zero_writes_through_the_programme(real_policy, real_cluster, when):
    """Eliminations, wind-downs, a mid-stage addition, lease ends and an undecided round."""
    _, after = settle(real_policy, decode_snapshot(dumps(real_cluster), KEYS), t(when), KEYS)
    again = plan(real_policy, after, t(when), KEYS)
    assert desired_writes(again, after, real_policy, KEYS) == []


# -- nodes -----------------------------------------------------------------------------------------
def test_a_drain_is_one_patch_with_state_label_drain_annotations_and_the_draining_taint():
    policy = two_teams()
    snapshot = cluster(assigned(0, 2), namespaces=["a-ns", "b-ns"])
    p = plan(policy, snapshot, AT, KEYS)
    [drain] = [a for a in p.actions if a.action == "drain"]
    [w] = [w for w in only(desired_writes(p, snapshot, policy, KEYS), "nodes") if w.name == drain.node]
    assert (w.verb, w.content_type) == ("patch", MERGE_PATCH)
    assert w.body == {
        "metadata": {
            "labels": {KEYS.node_state: "draining"},
            "annotations": {KEYS.drain_started: "2026-03-01T00:00:00+09:00",
                            KEYS.drain_deadline: "2026-03-01T02:00:00+09:00",
                            KEYS.drain_reason: drain.reason}},
        "spec": {"taints": [{"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"},
                            {"key": KEYS.draining_taint, "value": "true", "effect": "NoSchedule"}]}}
    assert w.taint_keys == (KEYS.consortium, KEYS.draining_taint)


def test_a_release_removes_our_label_taints_and_drain_annotations():
    policy = one_team()
    draining = [n.with_(taints=(OUR_TAINT, Taint(KEYS.draining_taint, "true")), drain_started=t("2026-02-28 22:00"),
                        annotations=MappingProxyType({KEYS.drain_started: "2026-02-28T22:00:00+09:00",
                                                      KEYS.drain_deadline: "2026-03-01T00:00:00+09:00",
                                                      KEYS.drain_reason: "reclaiming"}))
                for n in nodes("h100", 1, owner="a", draining_until=t("2026-03-01 00:00"), start=5)]
    snapshot = cluster(assigned(0, 1), draining, namespaces=["a-ns"])
    p = plan(policy, snapshot, AT, KEYS)
    assert [a.action for a in p.actions if a.node == "h100-005"] == ["release"]
    [w] = [w for w in only(desired_writes(p, snapshot, policy, KEYS), "nodes") if w.name == "h100-005"]
    assert w.body == {
        "metadata": {"labels": {KEYS.consortium: None, KEYS.node_state: "free"},
                     "annotations": {KEYS.drain_started: None, KEYS.drain_deadline: None, KEYS.drain_reason: None}},
        "spec": {"taints": []}}


def test_foreign_labels_annotations_and_taints_survive_every_node_patch():
    policy = two_teams(a_quota=0)
    [node] = nodes("h100", 1, owner="a")
    node = node.with_(labels=MappingProxyType({**node.labels, "team.example.com/oncall": "gpu-ops"}),
                      annotations=MappingProxyType({KEYS.telemetry: '{"version": 1}'}),
                      taints=(OUR_TAINT, FOREIGN_TAINT))
    snapshot = cluster([node], namespaces=["a-ns"])
    p = plan(policy, snapshot, AT, KEYS)
    [w] = only(desired_writes(p, snapshot, policy, KEYS), "nodes")
    assert set(w.body["metadata"]["labels"]) <= {KEYS.consortium, KEYS.node_state}
    assert set(w.body["metadata"]["annotations"]) <= {KEYS.drain_started, KEYS.drain_deadline, KEYS.drain_reason}
    assert {"key": FOREIGN_TAINT.key, "value": "degraded", "effect": "NoExecute"} in w.body["spec"]["taints"]


def test_taints_are_only_sent_when_ours_change():
    policy = two_teams()
    [node] = nodes("h100", 1)
    node = node.with_(taints=(FOREIGN_TAINT,), state="free", labels=MappingProxyType({**node.labels,
                                                                                      KEYS.node_state: "free"}))
    snapshot = cluster(assigned(1, 1), [node], nodes("h100", 1, owner="b", start=2), namespaces=["a-ns", "b-ns"])
    snapshot = snapshot.replace(nodes=tuple(n.with_(taints=(Taint(KEYS.consortium, "b"),)) if n.owner == "b" else n
                                            for n in snapshot.nodes))
    p = plan(policy, snapshot, AT, KEYS)
    assert only(desired_writes(p, snapshot, policy, KEYS), "nodes") == []


def test_drain_times_written_in_another_offset_are_not_rewritten():
    [node] = nodes("h100", 1, owner="a", draining_until=t("2026-03-01 02:00"), drain_started=AT)
    before = node.with_(annotations=MappingProxyType({KEYS.drain_started: "2026-02-28T15:00:00Z",
                                                      KEYS.drain_deadline: "2026-02-28T17:00:00Z"}))
    after = before.with_(annotations=MappingProxyType({KEYS.drain_started: "2026-03-01T00:00:00+09:00",
                                                       KEYS.drain_deadline: "2026-03-01T02:00:00+09:00"}))
    assert node_patch(before, after, KEYS) is None


def test_nodes_the_plan_does_not_mention_are_never_touched():
    policy = two_teams()
    stray = nodes("other", 3)  # matches no pool and has no owner: no intent
    snapshot = cluster(assigned(0, 1), stray, namespaces=["a-ns"])
    p = plan(policy, snapshot, AT, KEYS)
    assert not {w.name for w in only(desired_writes(p, snapshot, policy, KEYS), "nodes")} & {n.name for n in stray}


# -- namespaces and quotas -------------------------------------------------------------------------
def test_a_namespace_patch_carries_only_the_managed_labels_that_changed():
    policy = two_teams()
    p, after = settled(policy, cluster(assigned(0, 1), assigned(1, 1, owner="b"),
                                       namespaces=["a-ns", "b-ns"]), AT)
    ns = after.namespaces["a-ns"]
    edited = Namespace("a-ns", MappingProxyType({**ns.labels, KEYS.status: "eliminated", "team": "a-team"}),
                       ns.annotations)
    snapshot = after.replace(namespaces={**after.namespaces, "a-ns": edited})
    writes = desired_writes(p, snapshot, policy, KEYS)
    [w] = only(writes, "namespaces")
    assert w.body == {"metadata": {"labels": {KEYS.status: "active"}}}
    assert w.drift == "namespace"
    assert [e.body["reason"] for e in events(writes)] == ["DriftReverted"]


def test_a_stale_quota_label_of_a_model_no_longer_in_the_policy_is_removed():
    policy = two_teams()
    p, after = settled(policy, cluster(assigned(0, 1), namespaces=["a-ns", "b-ns"]), AT)
    ns = after.namespaces["a-ns"]
    old = Namespace("a-ns", MappingProxyType({**ns.labels, KEYS.quota_model("A100"): "64"}), ns.annotations)
    [w] = only(desired_writes(p, after.replace(namespaces={**after.namespaces, "a-ns": old}), policy, KEYS), "namespaces")
    assert w.body == {"metadata": {"labels": {KEYS.quota_model("A100"): None}}}


def test_a_namespace_missing_from_the_cluster_is_skipped_not_created():
    policy = two_teams()
    snapshot = cluster(assigned(0, 1), namespaces=["a-ns"])  # b-ns does not exist
    p = plan(policy, snapshot, AT, KEYS)
    assert any(a.action == "label-namespace" and a.namespace == "b-ns" for a in p.actions)
    writes = desired_writes(p, snapshot, policy, KEYS)
    assert all(w.namespace != "b-ns" and w.name != "b-ns" for w in writes)
    assert {w.verb for w in writes} <= {"patch", "create"}
    assert not [w for w in writes if w.resource == "namespaces" and w.verb == "create"]


@pytest.mark.parametrize("have, verb", [(None, "create"), ("0", "patch"), ("8", None)])
def test_the_resource_quota_is_created_patched_or_left_alone(have, verb):
    policy = two_teams()
    p, after = settled(policy, cluster(assigned(0, 1), namespaces=["a-ns"]), AT)
    quotas = {k: v for k, v in after.quotas.items() if k != "a-ns"}
    if have is not None:
        quotas["a-ns"] = have
    writes = only(desired_writes(p, after.replace(quotas=quotas), policy, KEYS), "resourcequotas")
    if verb is None:
        assert writes == []
        return
    [w] = writes
    assert (w.verb, w.name, w.namespace) == (verb, "gpu-scheduler", "a-ns")
    if verb == "create":
        assert w.body["kind"] == "ResourceQuota" and w.body["spec"] == {"hard": {"requests.nvidia.com/gpu": "8"}}
    else:
        assert w.body == {"spec": {"hard": {"requests.nvidia.com/gpu": "8"}}} and w.content_type == MERGE_PATCH
    assert w.drift == "quota"  # the namespace already carries this allocation: a hand edit


def test_a_quota_that_follows_a_new_allocation_is_no_drift():
    policy = two_teams()
    snapshot = cluster(assigned(0, 1), nodes("h100", 1, start=1), namespaces=["a-ns", "b-ns"])
    writes = only(desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS), "resourcequotas")
    assert writes and all(w.drift == "" for w in writes)


# -- evictions -------------------------------------------------------------------------------------
def test_one_eviction_per_gpu_pod_on_a_node_past_its_drain_deadline():
    policy = two_teams()
    late = nodes("h100", 1, owner="a", draining_until=t("2026-02-28 23:00"), drain_started=t("2026-02-28 21:00"),
                 start=7)
    pods = [GpuPod("a-ns", "train-0", "h100-007", 4), GpuPod("a-ns", "train-1", "h100-007", 4),
            GpuPod("a-ns", "keep", "h100-000", 8)]
    snapshot = cluster(assigned(0, 1), late, pods=pods, namespaces=["a-ns"])
    p = plan(policy, snapshot, AT, KEYS)
    assert [a.node for a in p.actions if a.action == "evict"] == ["h100-007"]
    writes = desired_writes(p, snapshot, policy, KEYS)
    evictions = only(writes, "pods/eviction")
    assert [(w.verb, w.namespace, w.name) for w in evictions] == [("evict", "a-ns", "train-0"),
                                                                  ("evict", "a-ns", "train-1")]
    assert evictions[0].body == {"apiVersion": "policy/v1", "kind": "Eviction",
                                 "metadata": {"name": "train-0", "namespace": "a-ns"}}
    [note] = events(writes, "NodeDraining")
    assert note.body["type"] == "Warning" and set(note.reports_on) == {w.key for w in evictions}


def test_writes_evict_before_giving_out_and_drain_after_giving_out_with_events_last():
    policy = two_teams(a_quota=8)
    late = nodes("h100", 1, owner="a", draining_until=t("2026-02-28 23:00"), start=7)
    snapshot = cluster(assigned(0, 2), late, nodes("h100", 1, start=3), pods=busy(["h100-007"], "a-ns"),
                       namespaces=["a-ns", "b-ns"])
    writes = desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS)
    kinds = [(w.resource, (w.body.get("metadata", {}).get("labels") or {}).get(KEYS.node_state)) for w in writes]
    order = [k for i, k in enumerate(kinds) if k not in kinds[:i]]
    assert order.index(("pods/eviction", None)) < order.index(("nodes", "assigned")) < \
        order.index(("nodes", "draining")) < order.index(("events", None))
    assert all(w.resource == "events" for w in writes[writes.index(only(writes, "events")[0]):])


def test_a_lease_handover_labels_the_new_nodes_before_tainting_the_leased_ones_and_keeps_the_quota():
    """Make before break: the lease pool closes at 22:00 (its drain before the 24:00 lease end),
    another pool can hold the team's quota, so its new nodes are given first and its quota stays."""
    policy = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 16}}"), consortia="a", pools=(
        "{name: lease, gpuModel: H100, nodeSelector: {pool: lease}, availableUntil: 2026-07-01}",
        "{name: gov, gpuModel: H100, nodeSelector: {pool: gov}, availableFrom: 2026-02-01}"))
    snapshot = replace(cluster(nodes("lease", 2, owner="a"), nodes("gov", 4), pods=busy(["lease-000", "lease-001"], "a-ns"),
                               namespaces=["a-ns"]), quotas={"a-ns": "16"})
    handover = plan(policy, snapshot, t("2026-06-30 22:00"), KEYS)
    assert handover.consortium("a").allocated == {"H100": 16} and handover.consortium("a").draining_nodes == [
        "lease-000", "lease-001"]
    writes = desired_writes(handover, snapshot, policy, KEYS)
    nodes_written = [(w.name, w.body["metadata"]["labels"][KEYS.node_state]) for w in writes if w.resource == "nodes"]
    assert [(n, s) for n, s in nodes_written if s != "free"] == [("gov-000", "assigned"), ("gov-001", "assigned"),
                             ("lease-000", "draining"), ("lease-001", "draining")]
    assert not only(writes, "resourcequotas")  # 16 GPUs before, during and after


# -- events ----------------------------------------------------------------------------------------
def test_every_node_action_is_an_event_in_the_consortiums_namespace():
    policy = two_teams()
    snapshot = cluster(assigned(0, 2), nodes("h100", 1, start=2), namespaces=["a-ns", "b-ns"])
    writes = desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS)
    assert [(e.namespace, e.body["related"]["name"]) for e in events(writes, "NodeDraining")] == [("a-ns", "h100-000")]
    [assigned_event] = events(writes, "NodeAssigned")
    assert assigned_event.namespace == "b-ns"
    assert assigned_event.body["involvedObject"] == {"apiVersion": "v1", "kind": "Namespace", "name": "b-ns",
                                                     "namespace": "b-ns"}
    assert assigned_event.reports_on == ("nodes/h100-002",)


def test_event_names_are_stable_for_the_same_plan_and_new_for_a_new_instant():
    policy = two_teams()
    snapshot = cluster(assigned(0, 2), nodes("h100", 1, start=2), namespaces=["a-ns", "b-ns"])
    names = [e.name for e in events(desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS))]
    again = [e.name for e in events(desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS))]
    later = [e.name for e in events(desired_writes(plan(policy, snapshot, t("2026-03-02 00:00"), KEYS), snapshot, policy, KEYS))]
    assert names == again and len(set(names)) == len(names)
    assert not set(names) & set(later)
    assert all(n.startswith("gpu-scheduler.") and len(n) <= 63 for n in names)
    assert event_name(AT, "NodeAssigned", "b-ns", "assign/h100-002") != event_name(AT, "NodeAssigned", "a-ns",
                                                                                    "assign/h100-002")


def test_status_events_only_when_the_status_or_stage_label_changes(real_policy, real_cluster):
    """At the round-1 cut (2026-01-15, 18:00) Naver Cloud and NC AI are eliminated; days
    later nothing about their status changes, so no status event is written again."""
    snapshot = decode_snapshot(dumps(real_cluster), KEYS)
    _, at_stage_1 = settle(real_policy, snapshot, t("2025-09-01 00:00"), KEYS)
    cut = plan(real_policy, at_stage_1, t("2026-01-15 18:00"), KEYS)
    writes = desired_writes(cut, at_stage_1, real_policy, KEYS)
    assert {e.namespace for e in events(writes, "Eliminated")} == {"naver-hyperclova", "ncai-varco"}
    assert {e.namespace for e in events(writes, "StageEntered")} >= {"lg-exaone", "upstage-solar"}
    after = apply(at_stage_1, cut, real_policy, KEYS)
    later = desired_writes(plan(real_policy, after, t("2026-01-20 00:00"), KEYS), after, real_policy, KEYS)
    assert not events(later, "Eliminated") and not events(later, "StageEntered")


def test_an_undecided_round_is_announced_once_per_namespace(real_policy, real_cluster):
    _, before = settle(real_policy, decode_snapshot(dumps(real_cluster), KEYS), t("2026-07-20 00:00"), KEYS)
    pending = plan(real_policy, before, t("2026-08-01 00:00"), KEYS)
    assert pending.decision_pending
    first = events(desired_writes(pending, before, real_policy, KEYS), "DecisionPending")
    assert first and {e.name for e in first} == {
        e.name for e in events(desired_writes(plan(real_policy, before, t("2026-08-02 00:00"), KEYS), before, real_policy, KEYS),
                               "DecisionPending")}


def test_a_hand_edited_node_is_restored_and_reported_as_drift():
    policy = two_teams()
    p, after = settled(policy, cluster(assigned(0, 1), assigned(1, 1, owner="b"),
                                       namespaces=["a-ns", "b-ns"]), AT)
    edited = tuple(n.with_(taints=()) if n.name == "h100-000" else n for n in after.nodes)
    writes = desired_writes(plan(policy, after.replace(nodes=edited), AT, KEYS), after.replace(nodes=edited), policy, KEYS)
    [w] = writes[:1]
    assert (w.name, w.drift, w.body) == ("h100-000", "node", {"spec": {"taints": [
        {"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"}]}})
    assert [(e.namespace, e.body["reason"]) for e in events(writes)] == [("a-ns", "DriftReverted")]


def test_first_labels_on_a_fresh_node_are_no_drift():
    policy = two_teams(a_quota=0)
    snapshot = cluster(nodes("h100", 3), namespaces=["a-ns", "b-ns"])
    writes = only(desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS), "nodes")
    assert writes and not [w for w in writes if w.drift]


def test_the_snapshot_model_is_not_changed_by_planning_writes():
    policy = two_teams()
    snapshot = cluster(assigned(0, 2), namespaces=["a-ns", "b-ns"])
    frozen = Snapshot(nodes=snapshot.nodes, namespaces=dict(snapshot.namespaces), quotas=dict(snapshot.quotas))
    desired_writes(plan(policy, snapshot, AT, KEYS), snapshot, policy, KEYS)
    assert snapshot == frozen
