"""Properties that hold for every programme and cluster (hypothesis draws them at random)."""

import json
from datetime import timedelta
from types import MappingProxyType

from hypothesis import given, note
from hypothesis import strategies as st

from scheduler.cluster import GpuPod, Node, Snapshot
from tests.keys import KEYS
from scheduler.planner import plan
from scheduler.planner.nodes import classify
from scheduler.planner.simulate import settle
from scheduler.policy import UNITS

from tests.builders import programme, stage_yaml, t

TEAMS = ["a", "b", "c", "d"]
MODELS = {"H100": 1, "B200": 2}
START = t("2026-01-01 00:00")


@st.composite
def programmes(draw):
    pools = []
    models = set()
    for i in range(draw(st.integers(1, 3))):
        model = draw(st.sampled_from(sorted(MODELS)))
        window = ""
        if i == 0 or model not in models:
            models.add(model)  # one pool of each model stays open, so every quota stays holdable
        elif draw(st.booleans()):
            window += f", availableUntil: '{(START + timedelta(days=draw(st.integers(5, 60)))).isoformat()}'"
        if window and draw(st.booleans()):
            window += f", availableFrom: '{(START - timedelta(days=draw(st.integers(0, 5)))).isoformat()}'"
        pools.append(f"{{name: p{i}, gpuModel: {model}, nodeSelector: {{pool: p{i}}}, topologyKey: block{window}}}")
    stages = []
    day = 0
    for n in range(draw(st.integers(1, 3))):
        eligible = draw(st.lists(st.sampled_from(TEAMS), unique=True, max_size=4))
        quotas = {}
        for team in eligible:
            if draw(st.booleans()):
                quotas[team] = {UNITS: draw(st.integers(0, 96))}
            else:
                quotas[team] = {m: draw(st.integers(0, 64)) for m in draw(st.sets(st.sampled_from(sorted(models)), min_size=1))}
        mode = draw(st.sampled_from(["hold", "step", "linear"]))
        wd = f"{{mode: {mode}, gracePeriod: {draw(st.integers(0, 10))}d, keepPercent: {draw(st.integers(0, 100))}}}"
        items = ", ".join(eligible)
        q = json.dumps(quotas)
        stages.append(stage_yaml(f"s{n}", (START + timedelta(days=day)).isoformat(), f"[{items}]", q, wind_down=wd))
        day += draw(st.integers(1, 20))
    policy = programme(*stages, consortia=" ".join(TEAMS), pools=tuple(pools))
    return policy, [f"p{i}" for i in range(len(pools))]


@st.composite
def clusters(draw, pool_names):
    nodes, pods = [], []
    for i in range(draw(st.integers(0, 30))):
        pool = draw(st.sampled_from(pool_names))
        name = f"n{i:03d}"
        labels = {"pool": pool, "block": f"{pool}-b{draw(st.integers(0, 3))}"}
        owner = draw(st.sampled_from([None, None, *TEAMS, "zeta"]))
        state = None
        deadline = started = None
        if owner:
            labels[KEYS.consortium] = owner
            state = "assigned"
            if draw(st.integers(0, 4)) == 0:
                state = "draining"
                started = START + timedelta(hours=draw(st.integers(0, 500)))
                deadline = started + timedelta(hours=2)
            labels[KEYS.node_state] = state
        gpus = draw(st.sampled_from([8, 8, 8, 4]))
        healthy = draw(st.sampled_from([None, None, None, gpus - 1, 0]))
        nodes.append(Node(name, MappingProxyType(labels), gpus, ready=draw(st.integers(0, 9)) > 0,
                          unschedulable=draw(st.integers(0, 9)) == 0, owner=owner, state=state,
                          drain_started=started, drain_deadline=deadline, healthy_gpus=healthy))
        if draw(st.booleans()):
            pods.append(GpuPod("x", f"job-{name}", name, 1))
    return Snapshot(nodes=tuple(nodes), pods=tuple(pods))


@st.composite
def cases(draw):
    policy, pools = draw(programmes())
    snap = draw(clusters(pools))
    at = START + timedelta(hours=draw(st.integers(-24, 24 * 70)))
    return policy, snap, at


def describe(snap):
    """One line per node, for failure reports."""
    return "\n".join(f"{n.name} {n.labels.get('pool')} {n.labels.get('block')} gpus={n.gpus}/{n.allocatable_gpus} "
                     f"ready={n.ready} cordoned={n.unschedulable} owner={n.owner} state={n.state} "
                     f"deadline={n.drain_deadline}" for n in snap.nodes)


def _usable(policy, snap, at):
    views, _ = classify(policy, snap, at)
    return {v.name: v for v in views}


@given(cases())
def test_no_node_is_ever_in_two_hands(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    seen = []
    for c in result.consortia:
        seen += c.nodes + c.draining_nodes
    assert len(seen) == len(set(seen))


@given(cases())
def test_nothing_is_assigned_that_is_notready_cordoned_gpu_less_or_in_a_closed_pool(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    views = _usable(policy, snap, at)
    for c in result.consortia:
        for name in c.nodes:
            assert views[name].usable, (name, views[name].why_not)


@given(cases())
def test_allocated_never_exceeds_target_and_target_never_exceeds_quota(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    for c in result.consortia:
        for m, gpus in c.allocated.items():
            assert gpus <= c.target.get(m, 0)
        if c.status == "active":
            if UNITS in c.quota:
                assert sum(g * MODELS[m] for m, g in c.target.items()) <= c.quota[UNITS]
            else:
                for m, gpus in c.target.items():
                    assert gpus <= c.quota.get(m, 0)


@given(cases())
def test_targets_never_overcommit_a_model(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    views = _usable(policy, snap, at)
    for m in MODELS:
        capacity = sum(v.gpus for v in views.values() if v.pool.gpuModel == m)
        assert sum(c.target.get(m, 0) for c in result.consortia) <= capacity


@given(cases())
def test_eliminated_pending_and_ineligible_teams_hold_nothing(case):
    policy, snap, at = case
    for c in plan(policy, snap, at, KEYS).consortia:
        if c.status in ("eliminated", "pending", "ineligible"):
            assert c.nodes == [] and c.target == {}


@given(cases())
def test_nobody_is_short_by_a_whole_node_while_a_fitting_free_node_of_that_model_exists(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    views = _usable(policy, snap, at)
    free = [views[n] for n, i in result.node_intents.items() if i.owner is None and n in views and views[n].usable]
    for c in result.consortia:
        for m, target in c.target.items():
            short = target - c.allocated.get(m, 0)
            assert not any(v.pool.gpuModel == m and 0 < v.gpus <= short for v in free), (c.name, m, short)


@given(cases())
def test_a_team_whose_target_did_not_shrink_loses_no_usable_node(case):
    """...except a node with failed GPUs swapped, in the same plan, for a healthier free one."""
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    views = _usable(policy, snap, at)
    held = {}
    for v in views.values():
        if v.usable and v.node.owner and not v.node.draining:
            held.setdefault((v.node.owner, v.pool.gpuModel), 0)
            held[(v.node.owner, v.pool.gpuModel)] += v.gpus
    for a in result.actions:
        if a.action == "drain" and a.node in views and views[a.node].usable:
            model = views[a.node].pool.gpuModel
            c = next((c for c in result.consortia if c.name == a.consortium), None)
            if c is None or c.target.get(model, 0) < held[(a.consortium, model)]:
                continue
            swapped = views[a.node]
            replacements = [views[x.node] for x in result.actions if x.action == "assign"
                            and x.consortium == c.name and x.node in views and not views[x.node].node.owner]
            assert swapped.unhealthy and any(r.pool.gpuModel == model and r.gpus > swapped.gpus
                                             for r in replacements), a


@given(cases())
def test_a_trim_never_removes_more_than_needed(case):
    policy, snap, at = case
    result = plan(policy, snap, at, KEYS)
    views = _usable(policy, snap, at)
    for c in result.consortia:
        for a in result.actions:
            if a.action == "drain" and a.consortium == c.name and a.node in views and views[a.node].usable:
                model = views[a.node].pool.gpuModel
                # keeping this node would have put the team above its target
                assert c.allocated.get(model, 0) + views[a.node].gpus > c.target.get(model, 0), a


@given(cases())
def test_the_same_input_gives_the_same_bytes(case):
    policy, snap, at = case
    assert json.dumps(plan(policy, snap, at, KEYS).to_dict()) == json.dumps(plan(policy, snap, at, KEYS).to_dict())


@given(cases())
def test_a_plan_once_applied_needs_no_further_assignment_or_drain(case):
    policy, snap, at = case
    first, after = settle(policy, snap, at, KEYS, busy=True)  # plan, apply, and again after evictions
    again = plan(policy, after, at, KEYS)
    note(describe(snap))
    note(f"first: {[(c.name, c.target, c.allocated, c.nodes) for c in first.consortia]}")
    note(f"again: {[(c.name, c.target, c.allocated, c.nodes) for c in again.consortia]}")
    assert [a for a in again.actions if a.action in ("assign", "drain")] == []
