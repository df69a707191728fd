"""Pods that run on another team's node: a pod of another consortium (or of `default`) that
tolerates the owner's taint or names the node is seen, counted against its own team, exported per
node, and reported once with a Warning Event in its own namespace (docs/security.md)."""

from __future__ import annotations

from scheduler.actuator.writes import FOREIGN_GPU_POD
from tests.security.conftest import Cluster

LG, LG_NS, UPSTAGE, UPSTAGE_NS = "lg", "lg-exaone", "upstage", "upstage-solar"


def foreign_series(cluster: Cluster) -> dict[tuple[str, str], float]:
    return {(s.labels["consortium"], s.labels["node"]): s.value
            for family in cluster.metrics.registry.collect() if family.name == "gpu_scheduler_foreign_gpu_pods"
            for s in family.samples}


def used(outcome, consortium: str) -> dict[str, int]:
    return outcome.plan.consortium(consortium).used


def test_another_teams_pod_on_lg_node_is_counted_for_its_team_exported_and_evented_once(cluster: Cluster):
    node = cluster.nodes_of(LG)[0]
    cluster.run_gpu_pod(LG_NS, "own-job", node, gpus=4)
    cluster.run_gpu_pod(UPSTAGE_NS, "stowaway", node, gpus=4)
    cluster.run_gpu_pod("default", "nobodys", cluster.nodes_of(LG)[1], gpus=8)
    cluster.settled()

    outcome = cluster.reconcile()

    assert used(outcome, LG) == {"H100": 4}  # its own pod only: the stowaway is not lg's usage
    assert used(outcome, UPSTAGE).get("H100", 0) >= 4
    assert foreign_series(cluster) == {(LG, node): 1.0, (LG, cluster.nodes_of(LG)[1]): 1.0}
    stowaway, = cluster.events(UPSTAGE_NS, FOREIGN_GPU_POD)
    assert stowaway["type"] == "Warning" and stowaway["involvedObject"]["kind"] == "Pod"
    assert stowaway["involvedObject"]["name"] == "stowaway"
    assert stowaway["message"].startswith(f"pod {UPSTAGE_NS}/stowaway uses 4 GPU(s) on node {node}, which is "
                                          f"assigned to consortium {LG}; its namespace is consortium {UPSTAGE}'s.")
    nobodys, = cluster.events("default", FOREIGN_GPU_POD)
    assert "its namespace is no consortium's" in nobodys["message"]

    assert cluster.reconcile().writes == 0  # reported once, not at every reconcile
    assert len(cluster.events(UPSTAGE_NS, FOREIGN_GPU_POD)) == 1


def test_a_teams_own_pods_are_not_foreign(cluster: Cluster):
    for i, node in enumerate(cluster.nodes_of(LG)[:2]):
        cluster.run_gpu_pod(LG_NS, f"job-{i}", node)
    cluster.settled()
    outcome = cluster.reconcile()
    assert outcome.plan.foreign_pods == [] and foreign_series(cluster) == {}
    assert cluster.events(LG_NS, FOREIGN_GPU_POD) == []
