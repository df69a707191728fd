"""The soak's own tools must see what they look for, or a green soak means nothing: the kill
switch stops a batch after exactly k writes, and each check flags the breakage it exists for."""

from collections import Counter
from datetime import datetime

import pytest

from tests.keys import KEYS
from scheduler.planner.model import ConsortiumPlan, Plan
from scheduler.sandbox import SandboxServer

from tests.soak.checks import DeadlineLedger, PodLedger, ownership_problems, plan_problems
from tests.soak.cluster import agent_pod, gpu_pod, soak_cluster
from tests.soak.process import DaemonProcess, Killed, ProgrammeWall
from tests.soak.soak import REPO
from tests.realpolicy import one_cluster_dir, one_cluster_policy

NOW = datetime.fromisoformat("2026-01-15T03:00:00+09:00")


def node(name, owner=None, state=None, taints=(), started=None, deadline=None):
    labels = {k: v for k, v in ((KEYS.consortium, owner), (KEYS.node_state, state)) if v}
    annotations = {k: v for k, v in ((KEYS.drain_started, started), (KEYS.drain_deadline, deadline)) if v}
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"taints": [{"key": k, "value": v, "effect": "NoSchedule"} for k, v in taints]}}


@pytest.mark.parametrize("concurrency", [1, 8], ids=["one-at-a-time", "8-at-a-time"])
def test_a_kill_after_k_writes_leaves_exactly_k_writes_made(tmp_path, concurrency):
    """Each write asks `is_leader` before it goes: once the switch trips, no writer thread starts another."""
    policy = one_cluster_policy()  # the real programme as one cluster (tests/realpolicy.py): one sandbox API
    with SandboxServer(port=0) as server:
        server.load_list(soak_cluster(policy, 16))
        wall = ProgrammeWall(datetime.fromisoformat("2025-08-04T00:00:00+09:00").timestamp())
        proc = DaemonProcess(server.write_kubeconfig(tmp_path / "kubeconfig"), one_cluster_dir(), wall, seed=1,
                             writes=Counter(), retries=Counter(), concurrency=concurrency)
        with pytest.raises(Killed):
            proc.reconcile(kill_after=7)
        assert sum(server.writes.values()) == 7
        assert proc.reconcile().writes > 0  # the switch is disarmed: the next reconcile finishes the batch
        proc.api.close()


def test_ownership_problems_flag_a_label_and_taint_that_disagree():
    assert ownership_problems([node("a", "lg", "assigned", [(KEYS.consortium, "lg")])]) == []
    assert ownership_problems([node("a", "lg", "draining", [(KEYS.consortium, "lg"), (KEYS.draining_taint, "true")])]) == []
    assert ownership_problems([node("a", "lg", "assigned", [(KEYS.consortium, "upstage")])])
    assert ownership_problems([node("a", None, "free", [(KEYS.consortium, "lg")])])
    assert ownership_problems([node("a", "lg", "assigned", [(KEYS.consortium, "lg"), (KEYS.consortium, "ncai")])])
    assert ownership_problems([node("a", "lg", "draining", [(KEYS.consortium, "lg")])])


def test_plan_problems_flag_a_node_in_two_consortia():
    def team(name, nodes, draining=()):
        return ConsortiumPlan(name, "active", {}, {}, {}, list(nodes), list(draining), [])

    plan = Plan(NOW, "stage-2", False, None, "", [team("lg", ["a"]), team("ncai", ["b"], ["a"])], [], [])
    assert plan_problems(plan) == [f"plan at {NOW.isoformat()} gives a to lg, ncai"]
    plan.consortia[1].draining_nodes = []
    assert plan_problems(plan) == []


def test_the_deadline_ledger_flags_a_drain_clock_that_moved():
    ledger = DeadlineLedger()
    drain = dict(started="2026-01-15T00:00:00+09:00", deadline="2026-01-15T02:00:00+09:00")
    assert ledger.observe([node("a", "lg", "draining", **drain)], "first") == []
    assert ledger.observe([node("a", "lg", "draining", **drain)], "again") == []
    assert ledger.observe([node("a", "lg", "draining", started=drain["started"],
                                deadline="2026-01-15T04:00:00+09:00")], "restart")
    moved = DeadlineLedger()
    moved.observe([node("a", "lg", "draining", **drain)], "first")
    assert moved.observe([node("a", "lg", "draining", started="2026-01-15T01:00:00+09:00",
                               deadline="2026-01-15T03:00:00+09:00")], "restart")
    released = DeadlineLedger()  # a drain that ended and a new one later is no reset
    released.observe([node("a", "lg", "draining", **drain)], "first")
    released.observe([node("a", None, "free")], "released")
    assert released.observe([node("a", "lg", "draining", started="2026-01-16T00:00:00+09:00",
                                  deadline="2026-01-16T02:00:00+09:00")], "again") == []


def test_the_pod_ledger_allows_only_evictions_after_the_deadline():
    pod = gpu_pod("lg-exaone", "train-a", "a", 8)
    before = [node("a", "lg", "draining", started="2026-01-15T02:00:00+09:00", deadline="2026-01-15T04:00:00+09:00")]
    after = [node("a", "lg", "draining", started="2026-01-15T00:00:00+09:00", deadline="2026-01-15T02:00:00+09:00")]
    early = PodLedger()
    early.observe(before, [pod], NOW, "first")
    assert early.observe(before, [], NOW, "gone") and early.evicted == 0
    evicted = PodLedger()
    evicted.observe(after, [pod], NOW, "first")
    assert evicted.observe(after, [], NOW, "gone") == [] and evicted.evicted == 1
    agent = agent_pod("a")
    daemonset = PodLedger()
    daemonset.observe(after, [agent], NOW, "first")
    assert daemonset.observe(after, [], NOW, "gone")  # even past the deadline: it has no GPUs
    finished = PodLedger()
    finished.observe(before, [pod], NOW, "first")
    finished.forget("lg-exaone", "train-a")
    assert finished.observe(before, [], NOW, "gone") == []
