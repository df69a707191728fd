"""One daemon, several clusters, each a sandbox API over HTTP with the official client: the real
programme across its five providers' clusters, a cluster partitioned across a round boundary
and healed, a quota split between two clusters, and a namespace missing where a team holds GPUs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scheduler.actuator.connect import connect
from scheduler.actuator.watch import ClusterReader
from scheduler.actuator.writer import Writer
from scheduler.cluster.synthetic import builtin_clusters
from scheduler.daemon.clock import Clock
from scheduler.daemon.links import ClusterLink, RouteError, Routes
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Reconciler
from scheduler.planner import policy_change_points
from scheduler.policy import load_policy_texts
from scheduler.sandbox import SandboxServer
from tests.builders import program_yaml, stage_yaml, t
from tests.keys import KEYS

REPO = Path(__file__).resolve().parents[2]
PREFIX = KEYS.prefix + "/"


class Wall:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class Fleet:
    """A sandbox API per cluster of the programme, and a reconciler linked to each (the daemon's
    own connection is the first cluster's: its Events go there)."""

    def __init__(self, policy_dir: Path, tmp: Path, start, loads: dict[str, dict] | None = None):
        self.source = PolicySource(policy_dir)
        self.source.reload()
        assert self.source.policy is not None, self.source.error
        policy = self.source.policy
        self.servers = {name: SandboxServer(port=0, seed=1).start() for name in policy.cluster_names}
        for name, cluster in (loads or builtin_clusters(policy)).items():
            self.servers[name].load_list(cluster)
        home = policy.cluster_names[0]
        self.servers[home].load_list({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-scheduler"}}]})
        self.apis = {name: connect(str(s.write_kubeconfig(tmp / f"{name}.kubeconfig"))) for name, s in self.servers.items()}
        self.links = {name: ClusterLink(name, ClusterReader(api, KEYS), Writer(api), api=api)
                      for name, api in self.apis.items()}
        self.wall = Wall()
        self.clock = Clock(start=start, wall=self.wall)
        self.metrics = Metrics()
        self.reconciler = Reconciler(self.source, self.links[home].reader, self.clock, self.metrics,
                                     self.links[home].writer, links=self.links, events_namespace="gpu-scheduler")

    def reconcile(self):
        return self.reconciler.reconcile()

    def settle(self, rounds: int = 6):
        for _ in range(rounds):
            outcome = self.reconcile()
            if outcome.writes == 0:
                return outcome
        pytest.fail(f"did not settle in {rounds} reconciles")

    def writes(self) -> Counter:
        return Counter({name: sum(n for (verb, res), n in s.writes.items()
                                  if verb in ("create", "update", "patch", "delete") and res != "leases")
                        for name, s in self.servers.items()})

    def holders(self) -> dict[str, str]:
        """Every node's consortium label, by qualified name (cluster/node)."""
        return {f"{name}/{n['metadata']['name']}": n["metadata"].get("labels", {}).get(PREFIX + "consortium")
                for name, s in self.servers.items() for n in s.list("nodes")}

    def state(self) -> dict:
        """What the scheduler manages in every cluster (labels, annotations and taints under its
        prefix, quotas), Events aside."""
        def ours(d):
            return {k: v for k, v in (d or {}).items() if k.startswith(PREFIX)}
        out = {}
        for name, s in self.servers.items():
            for n in s.list("nodes"):
                m = n["metadata"]
                out[f"{name}/node/{m['name']}"] = (ours(m.get("labels")), ours(m.get("annotations")), sorted(
                    (x["key"], x.get("value", "")) for x in (n.get("spec") or {}).get("taints") or []
                    if x["key"].startswith(PREFIX)))
            for ns in s.list("namespaces"):
                m = ns["metadata"]
                out[f"{name}/ns/{m['name']}"] = ours(m.get("labels"))
            for q in s.list("resourcequotas"):
                out[f"{name}/quota/{q['metadata']['namespace']}"] = q["spec"]["hard"]
        return out

    def quota(self, cluster: str, namespace: str) -> str | None:
        found = [q for q in self.servers[cluster].list("resourcequotas") if q["metadata"]["namespace"] == namespace]
        return found[0]["spec"]["hard"]["requests.nvidia.com/gpu"] if found else None

    def close(self):
        for api in self.apis.values():
            api.close()
        for s in self.servers.values():
            s.stop()


@pytest.fixture
def real_fleet(tmp_path):
    fleet = Fleet(REPO / "policies", tmp_path, t("2025-08-01 00:00"))
    yield fleet
    fleet.close()


def test_the_real_programme_runs_across_its_five_clusters_and_rests_at_every_change_point(real_fleet):
    fleet = real_fleet
    policy = fleet.source.policy
    assert list(fleet.servers) == ["nhn-a", "nhn-b", "kakao", "skt-haein", "naver"]
    points = [p.at for p in policy_change_points(policy) if p.at <= t("2026-12-31 00:00")]
    assert len(points) >= 6
    for at in points:
        fleet.wall.now += (at - fleet.clock.now()).total_seconds()
        outcome = fleet.settle()
        p = outcome.plan
        assert fleet.reconcile().writes == 0  # at rest: nothing left to write anywhere
        holders = fleet.holders()
        for c in p.consortia:
            held = sorted(n for n, who in holders.items() if who == c.name)
            assert held == sorted(c.nodes + c.draining_nodes), f"{at}: {c.name}"
            assert all(g <= c.target.get(m, 0) for m, g in c.allocated.items())
            for cluster in policy.cluster_names:  # each cluster's ResourceQuota: the GPUs held there
                here = sum(c.clusters.get(cluster, {}).values())
                for ns in c.namespaces:
                    assert fleet.quota(cluster, ns) == str(here), f"{at}: {cluster}/{ns}"
        assert all(k.up for k in p.clusters)
    # the programme's second half: lg and upstage on NHN/Kakao B200 only, and each in one cluster
    last = fleet.reconciler.last.plan
    for team in ("lg", "upstage"):
        c = last.consortium(team)
        assert c.split_reason == "" and len([k for k, per in c.clusters.items() if per.get("B200")]) == 1


def two_clusters(tmp: Path, stages: tuple[str, ...], nodes: dict[str, int]) -> Path:
    pools = tuple(f"{{name: {c}-b200, gpuModel: B200, cluster: {c}, nodeSelector: {{pool: b200}}, "
                  f"size: {{nodes: {n}, gpusPerNode: 8}}}}" for c, n in nodes.items())
    clusters = "[" + ", ".join(f"{{name: {c}}}" for c in nodes) + "]"
    folder = tmp / "policies"
    folder.mkdir()
    (folder / "program.yaml").write_text(program_yaml(
        consortia="a b", pools=pools, clusters=clusters,
        wind_down="{gracePeriod: 0s, keepPercent: 0, drainTimeout: 2h}"))
    (folder / "stages.yaml").write_text("---\n".join(stages))
    return folder


ROUND = (
    stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a, b]", "{a: {B200: 128}, b: {B200: 128}}"),
    stage_yaml("s2", "2026-07-01T00:00:00+09:00", "[a]", "{a: {B200: 256}}"),
)


def busy(fleet: Fleet) -> None:
    """A training pod on every node a team holds, in its namespace: drains must wait or evict."""
    for name, s in fleet.servers.items():
        items = [{"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"train-{n['metadata']['name']}", "namespace": f"{who}-ns"},
                  "spec": {"nodeName": n["metadata"]["name"], "containers": [
                      {"name": "t", "image": "trainer", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
                  "status": {"phase": "Running"}}
                 for n in s.list("nodes") if (who := n["metadata"].get("labels", {}).get(PREFIX + "consortium"))]
        s.load_list({"apiVersion": "v1", "kind": "List", "items": items})


def run_round(tmp: Path, partition: bool):
    folder = two_clusters(tmp, ROUND, {"east": 16, "west": 16})
    fleet = Fleet(folder, tmp, t("2026-06-30 20:00"))
    try:
        fleet.settle()
        busy(fleet)
        a, b = (fleet.reconciler.last.plan.consortium(x) for x in "ab")
        assert set(a.clusters) != set(b.clusters)  # each team in a cluster of its own
        where_b = next(iter(b.clusters))
        if partition:
            fleet.servers[where_b].faults.add(fraction=1.0, fault=500)
        fleet.wall.now += 4 * 3600 + 30 * 60  # 2026-07-01 00:30: b is cut
        outcome = fleet.settle()
        if partition:
            before = fleet.writes()[where_b]
            assert [k.up for k in outcome.plan.clusters if k.name == where_b] == [False]
            assert fleet.metrics.registry.get_sample_value("gpu_scheduler_cluster_up", {"cluster": where_b}) == 0
            held = [n for n, who in fleet.holders().items() if who == "b"]
            assert held and all(n.startswith(where_b + "/") for n in held)  # b keeps them: frozen, not moved
            assert fleet.reconciler.last.plan.consortium("a").allocated == {"B200": 128}  # a may not take them yet
            fleet.wall.now += 3 * 3600  # 03:30: past the 02:00 drain deadline, still partitioned
            fleet.settle()
            assert fleet.writes()[where_b] == before
            fleet.servers[where_b].faults.clear()
        else:
            fleet.wall.now += 3 * 3600
        for _ in range(4):  # drains past their deadline evict, then release, then a takes them
            fleet.settle()
            fleet.wall.now += 60
        final = fleet.settle().plan
        assert fleet.reconcile().writes == 0
        return fleet.state(), final, fleet
    finally:
        fleet.close()


def test_a_cluster_partitioned_across_a_round_boundary_freezes_alone_and_catches_up_as_a_fault_free_run(tmp_path):
    (tmp_path / "clean").mkdir()
    (tmp_path / "cut").mkdir()
    clean, clean_plan, _ = run_round(tmp_path / "clean", partition=False)
    cut, cut_plan, _ = run_round(tmp_path / "cut", partition=True)
    assert cut == clean
    assert cut_plan.consortium("a").allocated == {"B200": 256} == clean_plan.consortium("a").allocated
    assert cut_plan.consortium("b").nodes == [] and cut_plan.consortium("b").draining_nodes == []


def test_a_quota_no_cluster_can_hold_is_split_with_a_resource_quota_in_each(tmp_path):
    stage = stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a]", "{a: {B200: 192}}")
    folder = two_clusters(tmp_path, (stage,), {"east": 16, "west": 16})
    fleet = Fleet(folder, tmp_path, t("2026-02-01 00:00"))
    try:
        p = fleet.settle().plan
        a = p.consortium("a")
        assert a.allocated == {"B200": 192} and a.split_reason.startswith("split-across-clusters: B200: 128 in ")
        assert sorted(int(fleet.quota(c, "a-ns")) for c in ("east", "west")) == [64, 128]
        for c in ("east", "west"):
            ns = fleet.servers[c].get("namespaces", "a-ns")["metadata"]
            assert ns["labels"][PREFIX + "cluster-gpus"] == fleet.quota(c, "a-ns")
            assert ns["labels"][PREFIX + "allocated-gpus"] == "192"
            record = json.loads(ns["annotations"][KEYS.allocation])
            assert record["clusters"] == {"east": {"B200": a.clusters["east"]["B200"]},
                                          "west": {"B200": a.clusters["west"]["B200"]}}
    finally:
        fleet.close()


def test_a_namespace_missing_where_a_team_holds_gpus_is_a_warning_event_and_created_only_on_request(tmp_path):
    stage = stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a]", "{a: {B200: 192}}")
    folder = two_clusters(tmp_path, (stage,), {"east": 16, "west": 16})
    policy = load_policy_texts({p.name: p.read_text() for p in folder.iterdir()})
    loads = builtin_clusters(policy)
    loads["west"]["items"] = [i for i in loads["west"]["items"] if i["kind"] != "Namespace"]
    fleet = Fleet(folder, tmp_path, t("2026-02-01 00:00"), loads)
    try:
        p = fleet.settle().plan
        assert [(m.cluster, m.namespace) for m in p.missing_namespaces] == [("west", "a-ns")]
        events = [e for e in fleet.servers["east"].list("events") if e["reason"] == "NamespaceMissing"]
        assert len(events) == 1 and events[0]["type"] == "Warning"
        assert events[0]["metadata"]["namespace"] == "gpu-scheduler"
        assert "cluster west" in events[0]["message"] and "a-ns" in events[0]["message"]
        assert fleet.metrics.registry.get_sample_value(
            "gpu_scheduler_namespace_missing", {"cluster": "west", "consortium": "a", "namespace": "a-ns"}) == 1
        assert fleet.reconcile().writes == 0  # reported once
        fleet.reconciler.create_namespaces = True
        fleet.settle()
        assert fleet.servers["west"].get("namespaces", "a-ns") is not None
        assert fleet.quota("west", "a-ns") == str(p.consortium("a").clusters["west"]["B200"])
        assert fleet.reconciler.last.plan.missing_namespaces == []
    finally:
        fleet.close()


def test_each_cluster_is_reached_by_its_own_flag_in_order_and_a_missing_route_is_one_clear_line():
    policy = load_policy_texts({"program.yaml": program_yaml(
        pools=("{name: p1, gpuModel: B200, cluster: east, nodeSelector: {pool: b200}}",
               "{name: p2, gpuModel: B200, cluster: west, nodeSelector: {pool: b200}}",
               "{name: p3, gpuModel: B200, cluster: north, nodeSelector: {pool: b200}}"),
        clusters="[{name: east}, {name: west}, {name: north}]"),
        "stages.yaml": stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a]")})
    routes = Routes(home="east", contexts={"west": "ctx-w"}, kubeconfigs={"north": "/etc/north.kubeconfig"})
    got = routes.resolve(policy, "/k", ["ctx-w", "west"])
    assert [(n, r.own, r.context, r.kubeconfig) for n, r in got.items()] == [
        ("east", True, None, "/k"), ("west", False, "ctx-w", "/k"), ("north", False, None, "/etc/north.kubeconfig")]
    assert Routes().resolve(policy, "/k", ["east", "west", "north"])["west"].context == "west"
    with pytest.raises(RouteError, match="no way to reach cluster 'north': the kubeconfig has no context of that"):
        Routes(home="east").resolve(policy, "/k", ["west"])
    with pytest.raises(RouteError, match=r"--cluster-context names cluster 'wets' \(did you mean 'west'\?\)"):
        Routes(contexts={"wets": "x"}).resolve(policy, "/k", ["east", "west", "north"])


def test_a_daemon_restarted_while_a_cluster_is_down_counts_what_the_teams_hold_there_by_their_records(tmp_path):
    """No last sight of the cluster to plan on: each team's allocation records (written on its
    namespaces in every cluster) say what it holds there, so it is not given its quota again."""
    stage = stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a, b]", "{a: {B200: 64}, b: {B200: 128}}")
    folder = two_clusters(tmp_path, (stage,), {"east": 24, "west": 24})
    fleet = Fleet(folder, tmp_path, t("2026-02-01 00:00"))
    try:
        first = fleet.settle().plan
        b_home = next(iter(first.consortium("b").clusters))
        other = next(c for c in ("east", "west") if c != b_home)
        fleet.servers[b_home].faults.add(fraction=1.0, fault=500)
        restarted = Reconciler(fleet.source, fleet.links[other].reader, fleet.clock, Metrics(), fleet.links[other].writer,
                               links={name: ClusterLink(name, ClusterReader(api, KEYS), Writer(api), api=api)
                                      for name, api in fleet.apis.items()}, events_namespace="gpu-scheduler")
        fleet.wall.now += 60
        for _ in range(3):
            outcome = restarted.reconcile()
        b = outcome.plan.consortium("b")
        assert b.allocated == {"B200": 128} and b.clusters == {b_home: {"B200": 128}}
        assert b.target == {"B200": 128} and b.short == {}  # its quota is not lowered nor reported short
        assert not [n for n, who in fleet.holders().items() if who == "b" and n.startswith(other + "/")]
        assert [k.up for k in outcome.plan.clusters if k.name == b_home] == [False]
    finally:
        fleet.close()


def test_at_the_lease_end_every_clusters_new_nodes_are_given_before_any_cluster_drains(real_fleet):
    """lg and upstage leave the leased clusters (skt-haein, naver) for the government ones:
    make before break across clusters, whatever order the policy lists them in."""
    fleet = real_fleet
    for at in (t("2025-08-05 00:00"), t("2026-01-16 00:00"), t("2026-02-20 00:00"), t("2026-06-30 21:00")):
        fleet.wall.now += (at - fleet.clock.now()).total_seconds()
        fleet.settle()
    sent: list[tuple[str, str]] = []
    for name, link in fleet.links.items():
        apply = link.writer.apply

        def recording(writes, *args, _apply=apply, _name=name, **kwargs):
            writes = list(writes)
            sent.extend((_name, w.phase) for w in writes)
            return _apply(writes, *args, **kwargs)

        link.writer.apply = recording
    # the leased clusters first: an order in which writing cluster by cluster would drain first
    fleet.reconciler.links = dict(reversed(list(fleet.links.items())))
    fleet.wall.now += 3600  # 22:00: the leased pools start draining
    fleet.reconcile()
    phases = [phase for _, phase in sent]
    assert "giving" in phases and "draining" in phases
    last_giving = max(i for i, p in enumerate(phases) if p == "giving")
    first_draining = min(i for i, p in enumerate(phases) if p == "draining")
    assert last_giving < first_draining
    assert {c for c, p in sent if p == "giving"} <= {"nhn-a", "nhn-b", "kakao"}
    assert {c for c, p in sent if p == "draining"} == {"skt-haein", "naver"}
