"""Whole-node placement: sticky, topology-aware, reclaiming the right nodes, draining before reassigning."""

from datetime import timedelta

from scheduler.cluster import Node
from scheduler.planner import plan
from scheduler.planner.apply import apply

from tests.builders import busy, cluster, nodes, programme, stage_yaml, t
from tests.keys import KEYS

AT = t("2026-01-02 00:00")


def one_stage(quotas, eligible="[a, b, c]", **kw):
    return programme(stage_yaml("s1", "2026-01-01", eligible, quotas), **kw)


def node_actions(result, kind=None):
    return sorted((a.action, a.node, a.consortium) for a in result.actions
                  if a.node and (kind is None or a.action == kind))


def test_a_team_at_its_target_keeps_every_node_and_the_plan_is_quiet():
    p = one_stage("{a: {H100: 32}}")
    snap = cluster(nodes("h100", 4, owner="a"), nodes("h100", 4, start=4))
    result = plan(p, snap, AT, KEYS)
    assert node_actions(result) == []
    settled = apply(snap, result, p, KEYS)
    assert plan(p, settled, AT, KEYS).actions == []  # steady state: nothing to write


def test_free_nodes_fill_a_team_up_to_its_target_in_whole_nodes():
    p = one_stage("{a: {H100: 20}}")
    result = plan(p, cluster(nodes("h100", 4)), AT, KEYS)
    a = result.consortium("a")
    assert a.quota == {"H100": 20}
    assert a.allocated == {"H100": 16} and a.target == {"H100": 16}  # 2.5 nodes cannot be held
    assert len(node_actions(result, "assign")) == 2


def test_new_nodes_come_from_the_teams_own_block_first():
    p = one_stage("{a: {H100: 24}}")
    # blocks of 4: h100-b0 = nodes 0-3, h100-b1 = nodes 4-7; a holds node 5 in block b1
    snap = cluster(nodes("h100", 1, start=5, owner="a"), nodes("h100", 5), nodes("h100", 2, start=6))
    result = plan(p, snap, AT, KEYS)
    assert {n for _, n, _ in node_actions(result, "assign")} == {"h100-004", "h100-006"}


def test_without_a_block_a_team_starts_in_the_fullest_free_block():
    p = one_stage("{a: {H100: 16}}")
    # block b0 has 1 free node (others taken by b), block b1 has 4 free
    snap = cluster(nodes("h100", 3, owner="b"), nodes("h100", 1, start=3), nodes("h100", 4, start=4))
    p = one_stage("{a: {H100: 16}, b: {H100: 24}}")
    result = plan(p, snap, AT, KEYS)
    assert {n for _, n, c in node_actions(result, "assign") if c == "a"} == {"h100-004", "h100-005"}


def test_reclaim_never_drains_more_than_needed():
    p = one_stage("{a: {H100: 24}}")
    result = plan(p, cluster(nodes("h100", 4, owner="a")), AT, KEYS)
    assert len(node_actions(result, "drain")) == 1
    assert result.consortium("a").allocated == {"H100": 24}


def test_reclaim_takes_unhealthy_then_idle_then_outlying_nodes():
    p = one_stage("{a: {H100: 16}}")
    owned = nodes("h100", 3, owner="a")
    sick = nodes("h100", 1, owner="a", start=3, healthy=7)  # 7 of 8 GPUs healthy
    result = plan(p, cluster(owned, sick, pods=busy(["h100-000", "h100-001", "h100-002"])), AT, KEYS)
    assert [n for _, n, _ in node_actions(result, "drain")] == ["h100-000", "h100-003"]  # the sick one, then by name

    p = one_stage("{a: {H100: 16}}")
    snap = cluster(nodes("h100", 3, owner="a"), pods=busy(["h100-000", "h100-002"]))
    assert [n for _, n, _ in node_actions(plan(p, snap, AT, KEYS), "drain")] == ["h100-001"]  # the idle one

    # all busy: the node alone in its block goes first (blocks of 4: node 4 is in b1)
    snap = cluster(nodes("h100", 2, owner="a"), nodes("h100", 1, start=4, owner="a"),
                   pods=busy(["h100-000", "h100-001", "h100-004"]))
    assert [n for _, n, _ in node_actions(plan(p, snap, AT, KEYS), "drain")] == ["h100-004"]


def test_unhealthy_gpus_lower_a_nodes_capacity():
    p = one_stage("{a: {H100: 16}}")
    result = plan(p, cluster(nodes("h100", 2, owner="a", healthy=7)), AT, KEYS)
    a = result.consortium("a")
    assert a.allocated == a.target == {"H100": 14} and a.quota == {"H100": 16}  # no free node: below quota
    assert result.pools[1].healthy_gpus == 14 and result.pools[1].capacity_gpus == 16


def test_a_team_short_of_gpus_that_failed_swaps_a_degraded_node_for_a_healthy_free_one():
    p = one_stage("{a: {H100: 16}}")
    result = plan(p, cluster(nodes("h100", 2, owner="a", healthy=7), nodes("h100", 1, start=2)), AT, KEYS)
    a = result.consortium("a")
    assert a.allocated == {"H100": 15}  # one degraded node swapped; a second swap needs a second free node
    assert node_actions(result, "assign") == [("assign", "h100-002", "a")]
    drains = {x.node: x.reason for x in result.actions if x.action == "drain"}
    assert list(drains) == ["h100-000"] and "replaced by h100-002: 1 unhealthy GPU(s)" in drains["h100-000"]


def test_no_swap_when_the_free_node_is_no_better_than_the_degraded_one():
    p = one_stage("{a: {H100: 16}}")
    result = plan(p, cluster(nodes("h100", 2, owner="a", healthy=7), nodes("h100", 1, start=2, healthy=7)), AT, KEYS)
    assert node_actions(result, "assign") == [] and node_actions(result, "drain") == []


def test_notready_cordoned_and_gpu_less_nodes_are_never_assigned_and_are_taken_back():
    p = one_stage("{a: {H100: 64}}")
    snap = cluster(nodes("h100", 1, ready=False), nodes("h100", 1, start=1, unschedulable=True),
                   nodes("h100", 1, start=2, healthy=0), nodes("h100", 1, start=3, owner="a", ready=False),
                   nodes("h100", 1, start=4))
    result = plan(p, snap, AT, KEYS)
    assert node_actions(result, "assign") == [("assign", "h100-004", "a")]
    drains = {a.node: a.reason for a in result.actions if a.action == "drain"}
    assert list(drains) == ["h100-003"] and "NotReady" in drains["h100-003"]
    assert result.node_intents["h100-000"].state == "unhealthy"


def test_a_node_leaving_a_team_drains_then_is_evicted_at_the_deadline_then_released():
    p = one_stage("{a: {H100: 8}, b: {H100: 8}}")
    snap = cluster(nodes("h100", 2, owner="a"), pods=busy(["h100-000", "h100-001"], "a-ns"))
    first = plan(p, snap, AT, KEYS)
    drain = next(a for a in first.actions if a.action == "drain")
    assert drain.detail["deadline"] == (AT + timedelta(hours=2)).isoformat()
    assert first.consortium("b").allocated == {}  # not reassigned while draining
    draining = apply(snap, first, p, KEYS, busy=False)
    node = next(n for n in draining.nodes if n.name == drain.node)
    assert node.state == "draining" and node.drain_deadline == AT + timedelta(hours=2)

    before = plan(p, draining, AT + timedelta(hours=2) - timedelta(seconds=1), KEYS)
    assert node_actions(before) == []
    at_deadline = plan(p, draining, AT + timedelta(hours=2), KEYS)
    assert node_actions(at_deadline) == [("evict", drain.node, "a")]

    evicted = apply(draining, at_deadline, p, KEYS, busy=False)
    after = plan(p, evicted, AT + timedelta(hours=2), KEYS)
    assert node_actions(after) == [("assign", drain.node, "b"), ("release", drain.node, "a")]


def test_a_drain_completes_early_when_the_gpu_pods_are_gone():
    p = one_stage("{b: {H100: 8}}")
    snap = cluster(nodes("h100", 1, owner="a", draining_until=AT + timedelta(hours=2), drain_started=AT))
    assert node_actions(plan(p, snap, AT, KEYS)) == [("assign", "h100-000", "b"), ("release", "h100-000", "a")]


def test_a_restart_keeps_the_drain_clock_from_the_annotations():
    p = one_stage("{b: {H100: 8}}")
    deadline = AT + timedelta(minutes=30)
    snap = cluster(nodes("h100", 1, owner="a", draining_until=deadline, drain_started=AT - timedelta(minutes=90)),
                   pods=busy(["h100-000"]))
    result = plan(p, snap, AT, KEYS)
    assert result.node_intents["h100-000"].drain_deadline == deadline
    assert node_actions(result) == []


def test_a_drain_is_cancelled_when_its_team_needs_the_node_again():
    p = one_stage("{a: {H100: 8}}")
    snap = cluster(nodes("h100", 1, owner="a", draining_until=AT + timedelta(hours=1), drain_started=AT),
                   nodes("h100", 1, start=1), pods=busy(["h100-000"]))
    assert node_actions(plan(p, snap, AT, KEYS)) == [("assign", "h100-000", "a")]


def test_a_node_of_a_team_unknown_to_the_policy_is_drained():
    p = one_stage("{a: {H100: 8}}")
    result = plan(p, cluster(nodes("h100", 1, owner="zeta")), AT, KEYS)
    assert node_actions(result, "drain") == [("drain", "h100-000", "zeta")]


def test_a_node_that_matches_no_pool_but_carries_our_label_is_drained():
    p = one_stage("{a: {H100: 8}}")
    stray = nodes("a100", 1, owner="a")
    result = plan(p, cluster(stray), AT, KEYS)
    assert node_actions(result, "drain") == [("drain", "a100-000", "a")]


LEASE = ("{name: lease, gpuModel: H100, nodeSelector: {pool: lease}, availableUntil: 2026-03-01}",
         "{name: gov, gpuModel: H100, nodeSelector: {pool: gov}, availableFrom: 2026-02-15}")


def test_a_lease_pool_drains_drain_timeout_before_it_ends_and_work_moves_to_other_pools():
    p = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 16}}"), pools=LEASE)
    snap = cluster(nodes("lease", 2, owner="a"), nodes("gov", 2), pods=busy(["lease-000", "lease-001"]))
    drain_start = t("2026-03-01 00:00") - timedelta(hours=2)
    before = plan(p, snap, drain_start - timedelta(seconds=1), KEYS)
    assert node_actions(before) == []
    at = plan(p, snap, drain_start, KEYS)
    drains = [a for a in at.actions if a.action == "drain"]
    assert {a.node for a in drains} == {"lease-000", "lease-001"}
    assert {a.detail["deadline"] for a in drains} == {t("2026-03-01 00:00").isoformat()}
    assert {n for _, n, _ in node_actions(at, "assign")} == {"gov-000", "gov-001"}
    lease_pool = next(pp for pp in at.pools if pp.name == "lease")
    assert lease_pool.free_gpus == 0 and not lease_pool.available


def test_a_drain_deadline_never_passes_the_lease_end_whatever_its_start_says():
    """Even a start written after the lease ends (by hand, or by a clock gone wrong) cannot keep
    a leased node past the day the lessor takes it back."""
    p = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 16}}"), pools=LEASE)
    end = t("2026-03-01 00:00")
    for started in (end - timedelta(hours=3), end - timedelta(minutes=30), end + timedelta(days=30)):
        snap = cluster(nodes("lease", 1, owner="a", draining_until=started + timedelta(hours=2), drain_started=started),
                       pods=busy(["lease-000"]))
        intent = plan(p, snap, end - timedelta(hours=1), KEYS).node_intents["lease-000"]
        assert intent.drain_deadline <= end, started


def test_a_drain_start_in_the_future_counts_from_now():
    """A drain cannot have started later than now: a forged start in 2099 would otherwise hold
    the node for ever (outside a lease pool nothing else bounds it)."""
    p = one_stage("{a: {H100: 0}}")  # a keeps nothing: the drain runs on
    forged = t("2099-01-01 00:00")
    snap = cluster(nodes("h100", 1, owner="a", draining_until=forged + timedelta(hours=2), drain_started=forged),
                   pods=busy(["h100-000"]))
    intent = plan(p, snap, AT, KEYS).node_intents["h100-000"]
    assert (intent.drain_started, intent.drain_deadline) == (AT, AT + timedelta(hours=2))


def test_a_pool_before_its_window_opens_is_not_used():
    p = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 16}}"), pools=LEASE)
    result = plan(p, cluster(nodes("gov", 2)), t("2026-02-15 00:00") - timedelta(seconds=1), KEYS)
    assert result.consortium("a").allocated == {}
    assert node_actions(plan(p, cluster(nodes("gov", 2)), t("2026-02-15 00:00"), KEYS), "assign") == [
        ("assign", "gov-000", "a"), ("assign", "gov-001", "a")]


def test_namespaces_get_labels_and_a_resource_quota_of_the_assigned_non_draining_gpus():
    p = one_stage("{a: {H100: 16, B200: 8}}")
    snap = cluster(nodes("h100", 2, owner="a"), nodes("h100", 1, start=2, owner="a",
                                                          draining_until=AT + timedelta(hours=1), drain_started=AT),
                   nodes("b200", 1), pods=busy(["h100-002"]), namespaces=["a-ns"])
    result = plan(p, snap, AT, KEYS)
    labels = result.namespace_labels["a-ns"]
    prefix = "gpu-scheduler.sovereign-ai.kr/"
    assert {k.removeprefix(prefix): v for k, v in labels.items()} == {
        "consortium": "a", "stage": "s1", "status": "active", "quota-gpus": "24", "allocated-gpus": "24",
        "quota-h100": "16", "quota-b200": "8", "short-gpus": "0", "pending-stage": "none"}
    assert result.namespace_quotas["a-ns"] == 24
    quota = next(a for a in result.actions if a.action == "set-quota")
    assert quota.namespace == "a-ns" and quota.detail["gpus"] == 24


def test_the_same_input_gives_the_same_bytes():
    import json
    p = one_stage("{a: {H100: 16}, b: {units: 32}, c: {B200: 8}}")
    snap = cluster(nodes("h100", 6, owner="b"), nodes("b200", 4, start=0), nodes("h100", 3, start=6))
    one = json.dumps(plan(p, snap, AT, KEYS).to_dict())
    two = json.dumps(plan(p, snap, AT, KEYS).to_dict())
    assert one == two
