"""Properties of planning across several clusters, over programmes and fleets hypothesis draws:
no node in two hands anywhere, no team above its target, the same plan whatever order the
clusters' objects come in, and a frozen cluster untouched."""

from __future__ import annotations

import json
import random
from collections import Counter

from hypothesis import given, note, settings
from hypothesis import strategies as st

from scheduler.cluster.fleet import combine
from scheduler.planner import plan
from tests.builders import cluster, nodes, programme, stage_yaml, t
from tests.keys import KEYS

TEAMS = ["a", "b", "c"]
CLUSTER_NAMES = ["kakao", "nhn", "skt"]
START = "2026-01-01T00:00:00+09:00"


@st.composite
def fleets(draw):
    names = CLUSTER_NAMES[: draw(st.integers(2, 3))]
    pools, parts, models = [], {}, set()
    for name in names:
        groups = []
        for model in sorted(draw(st.sets(st.sampled_from(["B200", "H100"]), min_size=1))):
            models.add(model)
            pool = f"{name}-{model.lower()}"
            pools.append(f"{{name: {pool}, gpuModel: {model}, cluster: {name}, nodeSelector: {{pool: {pool}}}, "
                         "topologyKey: block}")
            count = draw(st.integers(0, 10))
            owners = draw(st.lists(st.sampled_from([None, *TEAMS]), min_size=count, max_size=count))
            for i, owner in enumerate(owners):
                groups.append(nodes(pool, 1, start=i, owner=owner, gpus=draw(st.sampled_from([4, 8]))))
        parts[name] = cluster(*groups)
    eligible = draw(st.lists(st.sampled_from(TEAMS), unique=True, min_size=1))
    quotas = {c: {m: draw(st.integers(0, 96)) for m in draw(st.sets(st.sampled_from(sorted(models)), min_size=1))}
              for c in eligible}
    clusters_yaml = "[" + ", ".join(f"{{name: {n}}}" for n in names) + "]"
    policy = programme(stage_yaml("s1", START, f"[{', '.join(eligible)}]", json.dumps(quotas)),
                       consortia=" ".join(TEAMS), pools=tuple(pools), clusters=clusters_yaml)
    frozen = frozenset(draw(st.sets(st.sampled_from(names), max_size=1)))
    return policy, parts, frozen


AT = t("2026-02-01 00:00")


@settings(max_examples=80, deadline=None)
@given(fleets())
def test_no_node_is_in_two_hands_and_no_team_goes_above_its_target(drawn):
    policy, parts, _ = drawn
    p = plan(policy, combine(parts), AT, KEYS)
    hands = Counter(n for c in p.consortia for n in c.nodes + c.draining_nodes)
    assert not [n for n, k in hands.items() if k > 1]
    for c in p.consortia:
        note(f"{c.name}: target {c.target}, allocated {c.allocated}, clusters {c.clusters}")
        assert all(g <= c.target.get(m, 0) for m, g in c.allocated.items())
        assert {m: sum(per.get(m, 0) for per in c.clusters.values()) for m in c.allocated} == c.allocated


@settings(max_examples=60, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_the_plan_is_the_same_whatever_order_the_objects_come_in(drawn, rnd: random.Random):
    policy, parts, frozen = drawn
    shuffled = {}
    for name, snap in reversed(list(parts.items())):
        items = list(snap.nodes)
        rnd.shuffle(items)
        shuffled[name] = snap.replace(nodes=tuple(items))
    one = plan(policy, combine(parts), AT, KEYS, frozen=frozen)
    other = plan(policy, combine(shuffled), AT, KEYS, frozen=frozen)
    assert one.to_dict() == other.to_dict() and one.node_intents == other.node_intents


@settings(max_examples=60, deadline=None)
@given(fleets())
def test_nothing_moves_into_or_out_of_a_frozen_cluster(drawn):
    policy, parts, frozen = drawn
    whole = combine(parts)
    p = plan(policy, whole, AT, KEYS, frozen=frozen)
    for name in frozen:
        assert not [a for a in p.actions if a.node.startswith(name + "/")]
        for node in whole.nodes:
            if node.cluster == name:
                intent = p.node_intents[node.name]
                assert intent.owner == node.owner  # held as last seen, free stays free
