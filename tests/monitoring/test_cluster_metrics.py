"""The per-cluster gauges of a programme of several clusters (docs/metrics.md): whether each cluster
is up, what each team holds in each, the namespaces missing in a cluster, and the `cluster` label of
the pool gauges; rebuilt from each plan, so what leaves the plan leaves /metrics."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

from prometheus_client import generate_latest

from scheduler.cluster.fleet import combine
from scheduler.daemon.metrics import Metrics
from scheduler.planner import plan
from scheduler.planner.model import ACTIVE, ClusterPlan, ConsortiumPlan, MissingNamespace, Plan, PoolPlan
from tests.builders import cluster, nodes, programme, stage_yaml, t
from tests.keys import KEYS

CLUSTER_GAUGES = ("gpu_scheduler_cluster_up", "gpu_scheduler_cluster_allocated_gpus", "gpu_scheduler_namespace_missing")
POOL_GAUGES = ("gpu_scheduler_pool_capacity_gpus", "gpu_scheduler_pool_healthy_gpus", "gpu_scheduler_pool_free_gpus")


def series(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric now: sorted label pairs -> value."""
    out = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def labelled(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def team(name: str, clusters: dict[str, dict[str, int]], split_reason: str = "") -> ConsortiumPlan:
    allocated: dict[str, int] = {}
    for per_model in clusters.values():
        for model, gpus in per_model.items():
            allocated[model] = allocated.get(model, 0) + gpus
    return ConsortiumPlan(name, ACTIVE, dict(allocated), dict(allocated), allocated, [], [], [f"{name}-ns"],
                          clusters=clusters, split_reason=split_reason)


def a_plan(consortia: list[ConsortiumPlan], clusters: list[ClusterPlan], pools: list[PoolPlan],
           missing: list[MissingNamespace] = ()) -> Plan:
    return Plan(datetime(2026, 7, 1, tzinfo=UTC), "s1", False, None, "0" * 64, consortia, pools, [],
                clusters=clusters, missing_namespaces=list(missing))


ROUND_DAY = a_plan(
    [team("lg", {"nhn": {"B200": 256}, "kakao": {"B200": 256, "H100": 64}}, "split-across-clusters: B200: ..."),
     team("motif", {"kakao": {"B200": 128}})],
    [ClusterPlan("kakao", True, 60, 480, 448), ClusterPlan("nhn", False, 40, 320, 256)],
    [PoolPlan("nhn-b200", "B200", 320, 320, 256, 64, nodes=40, cluster="nhn"),
     PoolPlan("kakao-b200", "B200", 400, 392, 384, 8, nodes=50, cluster="kakao"),
     PoolPlan("kakao-h100", "H100", 80, 80, 64, 16, nodes=10, cluster="kakao")],
    [MissingNamespace("kakao", "lg", "lg-ns", 320)],
)


def test_each_cluster_is_up_or_down_as_the_plan_saw_it():
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    assert series(metrics, "gpu_scheduler_cluster_up") == {labelled(cluster="kakao"): 1, labelled(cluster="nhn"): 0}


def test_what_each_team_holds_per_cluster_and_model():
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    assert series(metrics, "gpu_scheduler_cluster_allocated_gpus") == {
        labelled(cluster="kakao", consortium="lg", gpu_model="B200"): 256,
        labelled(cluster="kakao", consortium="lg", gpu_model="H100"): 64,
        labelled(cluster="nhn", consortium="lg", gpu_model="B200"): 256,
        labelled(cluster="kakao", consortium="motif", gpu_model="B200"): 128,
    }


def test_a_missing_namespace_is_one_series_at_1():
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    assert series(metrics, "gpu_scheduler_namespace_missing") == {
        labelled(cluster="kakao", consortium="lg", namespace="lg-ns"): 1}


def test_the_pool_gauges_carry_the_pool_cluster():
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    for name in POOL_GAUGES:
        got = {dict(k)["pool"]: dict(k)["cluster"] for k in series(metrics, name)}
        assert got == {"nhn-b200": "nhn", "kakao-b200": "kakao", "kakao-h100": "kakao"}, name
    assert series(metrics, "gpu_scheduler_pool_free_gpus")[labelled(pool="kakao-h100", gpu_model="H100",
                                                                     cluster="kakao")] == 16


def test_what_leaves_the_plan_leaves_metrics():
    """nhn back and kakao gone from the policy, lg's namespace created, motif out of kakao: their
    series end at the next plan, nothing stays at an old value."""
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    metrics.observe_plan(a_plan(
        [team("lg", {"nhn": {"B200": 512}}), team("motif", {})],
        [ClusterPlan("nhn", True, 40, 320, 320)],
        [PoolPlan("nhn-b200", "B200", 320, 320, 320, 0, nodes=40, cluster="nhn")],
    ))
    assert series(metrics, "gpu_scheduler_cluster_up") == {labelled(cluster="nhn"): 1}
    assert series(metrics, "gpu_scheduler_cluster_allocated_gpus") == {
        labelled(cluster="nhn", consortium="lg", gpu_model="B200"): 512}
    assert series(metrics, "gpu_scheduler_namespace_missing") == {}
    assert {dict(k)["pool"] for k in series(metrics, "gpu_scheduler_pool_capacity_gpus")} == {"nhn-b200"}


def test_before_the_first_plan_there_is_no_series():
    metrics = Metrics()
    for name in (*CLUSTER_GAUGES, *POOL_GAUGES):
        assert series(metrics, name) == {}, name


def test_the_exposition_passes_promtool_check_metrics(promtool):
    metrics = Metrics()
    metrics.observe_plan(ROUND_DAY)
    text = generate_latest(metrics.registry).decode()
    assert 'gpu_scheduler_cluster_up{cluster="nhn"} 0.0' in text
    assert 'gpu_scheduler_namespace_missing{cluster="kakao",consortium="lg",namespace="lg-ns"} 1.0' in text
    done = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_a_frozen_cluster_and_a_missing_namespace_as_the_planner_reports_them():
    """The real planner on two clusters: nhn not answering (frozen), team a's namespace missing in
    kakao where it holds GPUs."""
    policy = programme(
        stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a]", "{a: {B200: 512}}"),
        pools=("{name: nhn-b200, gpuModel: B200, cluster: nhn, nodeSelector: {pool: b200}, topologyKey: block}",
               "{name: kakao-b200, gpuModel: B200, cluster: kakao, nodeSelector: {pool: b200}, topologyKey: block}"),
        clusters="[{name: kakao}, {name: nhn}]",
        wind_down="{gracePeriod: 0s, keepPercent: 0, drainTimeout: 2h}",
    )
    fleet = combine({"nhn": cluster(nodes("b200", 32, owner="a"), nodes("b200", 8, start=32), namespaces=["a-ns"]),
                     "kakao": cluster(nodes("b200", 40))})
    p = plan(policy, fleet, t("2026-02-01 00:00"), KEYS, frozen=frozenset({"nhn"}))
    metrics = Metrics()
    metrics.observe_plan(p)

    assert series(metrics, "gpu_scheduler_cluster_up") == {labelled(cluster="kakao"): 1, labelled(cluster="nhn"): 0}
    held = series(metrics, "gpu_scheduler_cluster_allocated_gpus")
    assert held == {labelled(cluster=k, consortium="a", gpu_model=m): n
                    for k, per_model in p.consortium("a").clusters.items() for m, n in per_model.items()}
    assert held[labelled(cluster="nhn", consortium="a", gpu_model="B200")] == 256  # frozen: as last seen
    assert series(metrics, "gpu_scheduler_namespace_missing") == {
        labelled(cluster="kakao", consortium="a", namespace="a-ns"): 1}
    pools = {dict(k)["pool"]: dict(k)["cluster"] for k in series(metrics, "gpu_scheduler_pool_capacity_gpus")}
    assert pools == {"nhn-b200": "nhn", "kakao-b200": "kakao"}
