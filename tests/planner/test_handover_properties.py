"""Make before break, over generated programmes: when a lease pool ends and other pools can hold
a team's quota, the team's new nodes come before its leased nodes leave, so its GPUs never dip
because of the handover: not from one change point to the next, and not in the middle of the
batch of writes that carries it out (docs/planning.md, "Handovers")."""

from __future__ import annotations

import json
from datetime import timedelta
from types import MappingProxyType

from hypothesis import given, note, settings
from hypothesis import strategies as st

from scheduler.actuator.writes import desired_writes
from scheduler.cluster import Node, Snapshot
from scheduler.planner.apply import apply
from scheduler.planner.plan import plan
from scheduler.planner.simulate import simulate
from scheduler.policy import UNITS
from tests.builders import programme, stage_yaml, t
from tests.keys import KEYS

START = t("2026-01-01 00:00")
LEASE_END = t("2026-07-01 00:00")
UNITS_OF = {"H100": 1, "B200": 2}


@st.composite
def handovers(draw):
    """A programme whose lease pools all end at LEASE_END, with successor pools that open before
    the leases start draining and are big enough for every quota; its cluster, all nodes free."""
    teams = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
    leased = draw(st.sets(st.sampled_from(sorted(UNITS_OF)), min_size=1))
    quotas: dict[str, dict[str, int]] = {}
    for team in teams:
        if draw(st.booleans()):
            quotas[team] = {UNITS: 16 * draw(st.integers(1, 4))}
        else:
            quotas[team] = {m: 8 * draw(st.integers(1, 4)) for m in draw(st.sets(st.sampled_from(sorted(leased)), min_size=1))}
    pools, nodes = [], []

    def pool(name: str, model: str, count: int, window: str) -> None:
        pools.append(f"{{name: {name}, gpuModel: {model}, nodeSelector: {{pool: {name}}}, topologyKey: block{window}}}")
        for i in range(count):
            labels = {"pool": name, "block": f"{name}-b{i // 4}"}
            nodes.append(Node(f"{name}-{i:03d}", MappingProxyType(labels), 8))

    # what every quota needs, per model (a units quota may land on any model: count it on each)
    need = {m: sum(q.get(m, 0) + q.get(UNITS, 0) for q in quotas.values()) for m in UNITS_OF}
    for model in sorted(leased):
        pool(f"lease-{model.lower()}", model, draw(st.integers(1, 12)), f", availableUntil: '{LEASE_END.isoformat()}'")
        opens = LEASE_END - timedelta(days=draw(st.integers(1, 150)))
        extra = draw(st.integers(0, 4))
        pool(f"next-{model.lower()}", model, -(-need[model] // 8) + extra, f", availableFrom: '{opens.isoformat()}'")
    stage = stage_yaml("s1", START.isoformat(), f"[{', '.join(teams)}]", json.dumps(quotas))
    policy = programme(stage, consortia="a b c", pools=tuple(pools), models=json.dumps(
        {m: {"units": u} for m, u in UNITS_OF.items()}))
    return policy, Snapshot(nodes=tuple(sorted(nodes, key=lambda n: n.name)))


def held(p, team: str) -> int:
    """The team's GPUs in units (assigned, non-draining nodes): what its engineers can run on."""
    c = p.consortium(team)
    return sum(g * UNITS_OF[m] for m, g in c.allocated.items())


@settings(max_examples=60, deadline=None)
@given(handovers())
def test_a_lease_ending_never_lowers_an_active_teams_gpus_from_one_change_point_to_the_next(case):
    policy, snapshot = case
    steps = simulate(policy, snapshot, START, LEASE_END + timedelta(days=2), KEYS)
    for before, after in zip(steps, steps[1:]):
        for c in after.plan.consortia:
            if c.status != "active" or before.plan.consortium(c.name).status != "active":
                continue
            note(f"{c.name} at {after.at} ({after.why}): {held(before.plan, c.name)} -> {held(after.plan, c.name)}")
            assert held(after.plan, c.name) >= held(before.plan, c.name)
    last = steps[-1].plan
    for c in last.consortia:  # and after the lease, each team holds its whole quota elsewhere
        if c.status == "active":
            assert not c.short, c.short_reason


@settings(max_examples=60, deadline=None)
@given(handovers())
def test_the_writes_of_a_handover_give_the_new_nodes_before_the_leased_ones_start_draining(case):
    """Apply the handover's node writes one at a time, in the order the writer sends them: after
    every prefix, each team holds at least the smaller of what it held before and after."""
    policy, snapshot = case
    drains_start = LEASE_END - policy.wind_down.drainTimeout
    before = plan(policy, snapshot, drains_start - timedelta(minutes=1), KEYS)
    snapshot = apply(snapshot, before, policy, KEYS)
    handover = plan(policy, snapshot, drains_start, KEYS)
    gpus = {n.name: n.gpus * UNITS_OF[n.labels["pool"].split("-")[1].upper()] for n in snapshot.nodes}
    state = {n.name: (n.owner, n.state) for n in snapshot.nodes}

    def holding(team: str) -> int:
        return sum(gpus[name] for name, (owner, s) in state.items() if owner == team and s == "assigned")

    teams = [c.name for c in handover.consortia if c.status == "active"]
    start = {team: holding(team) for team in teams}
    end = {team: held(handover, team) for team in teams}
    for w in desired_writes(handover, snapshot, policy, KEYS):
        if w.resource != "nodes":
            continue
        labels = w.body.get("metadata", {}).get("labels") or {}
        owner, s = state[w.name]
        owner = labels.get(KEYS.consortium, owner) if KEYS.consortium in labels else owner
        s = labels.get(KEYS.node_state, s) if KEYS.node_state in labels else s
        state[w.name] = (owner, s)
        for team in teams:
            note(f"after {w.reason}: {team} holds {holding(team)}")
            assert holding(team) >= min(start[team], end[team])
