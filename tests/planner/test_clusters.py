"""A programme of several clusters (docs/planning.md, Clusters): quotas stay one number per
team, a team's GPUs of a model stay in one cluster where they can, a team that outgrows its
cluster moves whole to one with room (never to make room for another), a split is said and undone
once a cluster has room, and a cluster that stops answering is frozen as it was."""

from __future__ import annotations

from textwrap import dedent

import pytest

from scheduler.cluster import Snapshot
from scheduler.cluster.fleet import combine, part, split
from scheduler.planner import plan
from scheduler.planner.apply import apply
from scheduler.planner.clusters import for_cluster
from scheduler.planner.model import ASSIGN, DRAIN, DRAINING, EVICT
from scheduler.policy import PolicyError, load_policy_texts
from tests.builders import cluster, nodes, program_yaml, programme, stage_yaml, t
from tests.keys import KEYS

CLUSTERS = "[{name: kakao, provider: Kakao}, {name: nhn, displayName: NHN Cloud, provider: NHN Cloud}]"
POOLS = (  # the same selector in both: the cluster, not the labels, decides
    "{name: nhn-b200, gpuModel: B200, cluster: nhn, nodeSelector: {pool: b200}, topologyKey: block}",
    "{name: kakao-b200, gpuModel: B200, cluster: kakao, nodeSelector: {pool: b200}, topologyKey: block}",
)
START = "2026-01-01T00:00:00+09:00"
ROUND = "2026-07-01T00:00:00+09:00"


def two_clusters(*stages: str, wind_down: str = "{gracePeriod: 0s, keepPercent: 0, drainTimeout: 2h}"):
    return programme(*stages, pools=POOLS, clusters=CLUSTERS, wind_down=wind_down)


def fleet(nhn: Snapshot, kakao: Snapshot) -> Snapshot:
    return combine({"nhn": nhn, "kakao": kakao})


def held(p, team: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in p.consortium(team).nodes:
        c, node = split(name)
        out.setdefault(c, []).append(node)
    return out


def test_a_quota_that_fits_one_cluster_is_held_in_one():
    policy = two_clusters(stage_yaml("s1", START, "[a, b]", "{a: {B200: 256}, b: {B200: 256}}"))
    p = plan(policy, fleet(cluster(nodes("b200", 40)), cluster(nodes("b200", 40))), t("2026-02-01 00:00"), KEYS)
    for team in ("a", "b"):
        c = p.consortium(team)
        assert c.allocated == {"B200": 256}
        assert len(held(p, team)) == 1 and c.split_reason == ""
    assert set(held(p, "a")) != set(held(p, "b"))  # each in a cluster of its own: 256 + 256 > 320
    assert {c.name: c.assigned_gpus for c in p.clusters} == {"kakao": 256, "nhn": 256}


def test_a_quota_no_cluster_can_hold_is_split_and_the_plan_says_why():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 512}}"))
    p = plan(policy, fleet(cluster(nodes("b200", 40)), cluster(nodes("b200", 40))), t("2026-02-01 00:00"), KEYS)
    a = p.consortium("a")
    assert a.allocated == {"B200": 512}
    assert sum(sum(per.values()) for per in a.clusters.values()) == 512 and len(a.clusters) == 2
    assert a.split_reason.startswith("split-across-clusters: B200: 320 in ")
    assert "(no cluster had all 512 free for it)" in a.split_reason
    assert p.to_dict()["consortia"][0]["split_reason"] == a.split_reason


def test_a_team_is_not_moved_to_a_roomier_cluster_when_its_quota_grows():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 256}}"))
    nhn = cluster(nodes("b200", 8, owner="a"), nodes("b200", 32, start=8))
    kakao = cluster(nodes("b200", 80))
    p = plan(policy, fleet(nhn, kakao), t("2026-02-01 00:00"), KEYS)
    assert set(held(p, "a")) == {"nhn"} and len(held(p, "a")["nhn"]) == 32
    assert not [a for a in p.actions if a.action == DRAIN]


def test_a_team_that_outgrows_its_cluster_moves_whole_to_one_with_room_for_all_of_it():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 512}}"))
    nhn = cluster(nodes("b200", 32, owner="a"), nodes("b200", 8, start=32))  # 256 held, room for 320 only
    kakao = cluster(nodes("b200", 80))
    p = plan(policy, fleet(nhn, kakao), t("2026-02-01 00:00"), KEYS)
    assert p.consortium("a").clusters == {"kakao": {"B200": 512}}
    assert {x.node.split("/")[0] for x in p.actions if x.action == ASSIGN} == {"kakao"}  # nothing given in nhn
    assert len([x for x in p.actions if x.action == DRAIN and x.node.startswith("nhn/")]) == 32


def test_a_split_team_is_gathered_in_one_cluster_once_one_has_room_for_all_of_it():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 512}}"))
    nhn = cluster(nodes("b200", 40, owner="a"))  # 320, nhn full
    kakao = cluster(nodes("b200", 24, owner="a"), nodes("b200", 16, start=24))  # 192 and 128 free
    p = plan(policy, fleet(nhn, kakao), t("2026-02-01 00:00"), KEYS)
    assert not [x for x in p.actions if x.action == DRAIN]  # no room anywhere for all 512: it stays split
    assert p.consortium("a").split_reason.startswith("split-across-clusters: B200: 320 in nhn and 192 in kakao (")
    roomy = cluster(nodes("b200", 24, owner="a"), nodes("b200", 56, start=24))  # 448 free: room for nhn's 320
    p = plan(policy, fleet(nhn, roomy), t("2026-02-01 00:00"), KEYS)
    assert {x.node.split("/")[0] for x in p.actions if x.action == DRAIN} == {"nhn"}
    assert len([x for x in p.actions if x.action == DRAIN]) == 40
    assert {x.node.split("/")[0] for x in p.actions if x.action == ASSIGN} == {"kakao"}
    assert p.consortium("a").allocated == {"B200": 512} and p.consortium("a").clusters == {"kakao": {"B200": 512}}
    settled = plan(policy, apply(fleet(nhn, roomy), p, policy, KEYS, busy=False), t("2026-02-01 00:01"), KEYS)
    assert p.consortium("a").split_reason == "" and settled.consortium("a").clusters == {"kakao": {"B200": 512}}
    assert not [x for x in settled.actions if x.action in (DRAIN, ASSIGN)]


def test_a_team_that_can_grow_where_it_is_is_never_moved_to_make_room_for_another():
    pools = tuple(f"{{name: {c}-b200, gpuModel: B200, cluster: {c}, nodeSelector: {{pool: b200}}}}"
                  for c in ("east", "west", "north"))
    policy = programme(stage_yaml("s1", START, "[a, b]", "{a: {B200: 1024}, b: {B200: 1024}}"), pools=pools,
                       clusters="[{name: east}, {name: west}, {name: north}]")
    east = cluster(nodes("b200", 64, owner="b"), nodes("b200", 128, start=64))  # b: 512 held, room for 1024 more
    west = cluster(nodes("b200", 256))  # 2048 free
    north = cluster(nodes("b200", 64, owner="a"))  # a: 512 held, no room
    p = plan(policy, combine({"east": east, "west": west, "north": north}), t("2026-02-01 00:00"), KEYS)
    # a must move (north is full) and east would be the tightest fit for all of it, but that room is b's
    assert p.consortium("b").clusters == {"east": {"B200": 1024}}
    assert not [x for x in p.actions if x.action == DRAIN and x.consortium == "b"]
    assert p.consortium("a").clusters == {"west": {"B200": 1024}}


def test_node_names_repeat_across_clusters_and_stay_apart():
    policy = two_clusters(stage_yaml("s1", START, "[a, b]", "{a: {B200: 32}, b: {B200: 32}}"))
    p = plan(policy, fleet(cluster(nodes("b200", 4)), cluster(nodes("b200", 4))), t("2026-02-01 00:00"), KEYS)
    assert sorted(p.node_intents) == [f"{c}/b200-{i:03d}" for c in ("kakao", "nhn") for i in range(4)]
    assert sorted(p.consortium("a").nodes + p.consortium("b").nodes) == sorted(p.node_intents)


def test_a_node_joins_only_the_pools_of_its_own_cluster():
    pools = (
        "{name: nhn-b200, gpuModel: B200, cluster: nhn, nodeSelector: {pool: nhn}}",
        "{name: kakao-b200, gpuModel: B200, cluster: kakao, nodeSelector: {pool: kakao}}",
    )
    policy = programme(stage_yaml("s1", START, "[a]", "{a: {B200: 64}}"), pools=pools, clusters=CLUSTERS)
    # kakao's nodes carry nhn's pool label: they are in no pool of kakao, so in none
    p = plan(policy, fleet(cluster(nodes("nhn", 2)), cluster(nodes("nhn", 4))), t("2026-02-01 00:00"), KEYS)
    assert p.consortium("a").nodes == ["nhn/nhn-000", "nhn/nhn-001"]
    assert {pp.name: pp.nodes for pp in p.pools} == {"kakao-b200": 0, "nhn-b200": 2}


def test_each_cluster_gets_its_own_share_of_the_plan_with_its_own_names():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 512}}"))
    nhn = cluster(nodes("b200", 40), namespaces=["a-ns"])
    kakao = cluster(nodes("b200", 40))  # a-ns missing there
    whole = fleet(nhn, kakao)
    p = plan(policy, whole, t("2026-02-01 00:00"), KEYS)
    a = p.consortium("a")
    mine = for_cluster(p, "nhn")
    assert set(mine.node_intents) == {n.name for n in nhn.nodes}
    assert mine.namespace_quotas == {"a-ns": sum(a.clusters["nhn"].values())}
    assert mine.namespace_labels["a-ns"][KEYS.cluster_gpus] == str(sum(a.clusters["nhn"].values()))
    assert mine.namespace_labels["a-ns"][KEYS.allocated_gpus] == "512"  # the team's, across clusters
    theirs = for_cluster(p, "kakao")
    assert [(m.namespace, m.gpus) for m in theirs.missing_namespaces] == [("a-ns", sum(a.clusters["kakao"].values()))]
    assert all(not a_.node or "/" not in a_.node for a_ in mine.actions + theirs.actions)
    assert part(apply(whole, p, policy, KEYS), "nhn").nodes == apply(nhn, mine, policy, KEYS).nodes


def test_a_frozen_cluster_keeps_its_nodes_as_last_seen_and_the_round_applies_when_it_returns():
    stages = (
        stage_yaml("s1", START, "[a, b]", "{a: {B200: 256}, b: {B200: 256}}"),
        stage_yaml("s2", ROUND, "[b]", "{b: {B200: 512}}"),
    )
    policy = two_clusters(*stages)
    nhn = cluster(nodes("b200", 32, owner="a"), nodes("b200", 8, start=32))
    kakao = cluster(nodes("b200", 32, owner="b"), nodes("b200", 40, start=32))
    whole = fleet(nhn, kakao)

    frozen = plan(policy, whole, t("2026-07-01 01:00"), KEYS, frozen=frozenset({"nhn"}))
    assert not [x for x in frozen.actions if x.node.startswith("nhn/")]  # nothing in or out of nhn
    assert len(held(frozen, "a")["nhn"]) == 32  # a holds what it held, cut or not
    assert set(held(frozen, "b")) == {"kakao"} and frozen.consortium("b").allocated == {"B200": 512}
    assert [c.up for c in frozen.clusters] == [False if c.name == "nhn" else True for c in frozen.clusters]

    back = plan(policy, apply(whole, frozen, policy, KEYS), t("2026-07-01 03:00"), KEYS)
    drains = {x.node for x in back.actions if x.action == DRAIN}
    assert drains == {f"nhn/b200-{i:03d}" for i in range(32)}
    deadlines = {back.node_intents[n].drain_deadline for n in drains}
    assert deadlines == {t("2026-07-01 02:00")}  # the round boundary's deadline, not 05:00
    after = plan(policy, apply(apply(whole, frozen, policy, KEYS), back, policy, KEYS), t("2026-07-01 03:01"), KEYS)
    assert {x.node for x in after.actions if x.action == EVICT} <= drains
    assert all(after.node_intents[n].state == DRAINING or after.node_intents[n].owner is None for n in drains)


def test_a_frozen_cluster_gives_out_none_of_its_free_nodes():
    policy = two_clusters(stage_yaml("s1", START, "[a]", "{a: {B200: 256}}"))
    p = plan(
        policy, fleet(cluster(nodes("b200", 40)), cluster(nodes("b200", 8))), t("2026-02-01 00:00"), KEYS,
        frozen=frozenset({"nhn"}),
    )
    assert set(held(p, "a")) == {"kakao"} and p.consortium("a").allocated == {"B200": 64}
    assert p.consortium("a").short_reason == (
        "free B200 GPUs (320 in nhn) are in a cluster that is not answering: frozen until it does")


def test_a_programme_of_one_named_cluster_plans_like_one_without_clusters():
    stage = stage_yaml("s1", START, "[a, b]", "{a: {B200: 64}, b: {H100: 32}}")
    plain = programme(stage)
    named = programme(stage, clusters="[{name: home}]")
    snap = cluster(nodes("b200", 12), nodes("h100", 6))
    one, other = plan(plain, snap, t("2026-02-01 00:00"), KEYS), plan(named, snap, t("2026-02-01 00:00"), KEYS)
    assert one.node_intents == other.node_intents and one.actions == other.actions
    assert one.consortium("a").clusters == {"default": {"B200": 64}}
    assert other.consortium("a").clusters == {"home": {"B200": 64}}
    assert [pp.cluster for pp in other.pools] == ["home", "home"]


# --- validation -----------------------------------------------------------------------------------


def _issues(**kw) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_texts({"program.yaml": program_yaml(**kw), "stages.yaml": stage_yaml("s1", START, "[a]")})
    return [str(i) for i in caught.value.issues]


def test_a_pool_in_an_unknown_cluster_is_named_with_its_line():
    pools = ("{name: b200, gpuModel: B200, cluster: nhm, nodeSelector: {pool: b200}}",)
    assert _issues(pools=pools, clusters=CLUSTERS) == [
        "program.yaml:8: spec.pools[0].cluster: unknown cluster 'nhm' (did you mean 'nhn'?): "
        "declare it in spec.clusters (kakao, nhn)"
    ]


def test_a_pool_without_a_cluster_when_several_are_listed_is_refused():
    pools = (POOLS[0], "{name: b200, gpuModel: B200, nodeSelector: {pool: b200}}")
    assert _issues(pools=pools, clusters=CLUSTERS) == [
        "program.yaml:9: spec.pools[1].name: pool 'b200' names no cluster, and spec.clusters lists 2 "
        "(kakao, nhn): say which one its nodes are in (cluster: ...)"
    ]


def test_a_cluster_listed_twice_is_refused():
    found = _issues(pools=POOLS, clusters="[{name: nhn}, {name: kakao}, {name: nhn}]")
    assert found == ["program.yaml:15: spec.clusters[2].name: cluster 'nhn' is defined twice (first at index 0)"]


def test_a_pool_naming_a_cluster_in_a_programme_that_lists_none_is_refused():
    pools = ("{name: b200, gpuModel: B200, cluster: nhn, nodeSelector: {pool: b200}}",)
    assert _issues(pools=pools) == [
        "program.yaml:8: spec.pools[0].cluster: unknown cluster 'nhn': declare it in spec.clusters"
    ]


def test_the_clusters_document_themselves():
    text = dedent(program_yaml(pools=POOLS, clusters=CLUSTERS))
    policy = load_policy_texts({"program.yaml": text, "stages.yaml": stage_yaml("s1", START, "[a]")})
    assert [(c.name, c.displayName, c.provider) for c in policy.clusters] == [
        ("kakao", None, "Kakao"), ("nhn", "NHN Cloud", "NHN Cloud")]
    assert policy.multi_cluster and [policy.cluster_of(p) for p in policy.pools] == ["nhn", "kakao"]
