"""Targets: wind-down first, then per-model quotas max-min fair, then units from what is left."""

from datetime import timedelta

from scheduler.planner import plan
from scheduler.planner.targets import water_fill

from tests.builders import busy, cluster, nodes, programme, stage_yaml, t
from tests.keys import KEYS


def free(*sizes):
    return [(size, f"n{i:02d}", None) for i, size in enumerate(sizes)]


def held(*slots):
    return [(size, f"n{i:02d}", owner) for i, (size, owner) in enumerate(slots)]


def targets(result):
    return {c.name: c.target for c in result.consortia if c.target}


def test_without_shortage_everyone_gets_its_quota_in_whole_nodes():
    assert water_fill({"a": 16, "b": 40}, free(8, 8, 8, 8, 8, 8, 8, 8))[0] == {"a": 16, "b": 40}
    assert water_fill({"a": 12, "b": 40}, free(8, 8, 8, 8, 8, 8, 8, 8))[0] == {"a": 8, "b": 40}


def test_under_shortage_small_demands_are_met_and_the_rest_is_shared_evenly_in_whole_nodes():
    shares, _ = water_fill({"a": 32, "b": 32, "c": 8}, free(8, 8, 8, 8, 8, 8))
    assert shares["c"] == 8
    assert shares["a"] + shares["b"] == 40
    assert abs(shares["a"] - shares["b"]) == 8 and shares["a"] % 8 == 0 and shares["b"] % 8 == 0


def test_the_odd_node_under_shortage_goes_by_name_whoever_holds_it():
    # targets depend on demands and node sizes only, never on who holds which node
    held_by_b = held(*[(8, "b")] * 3, *[(8, None)] * 2)
    assert water_fill({"a": 32, "b": 32}, held_by_b)[0] == {"a": 24, "b": 16}
    assert water_fill({"a": 32, "b": 32}, free(8, 8, 8, 8, 8))[0] == {"a": 24, "b": 16}


def test_partly_healthy_nodes_still_go_to_the_short():
    # 8 + 8 + 7 healthy GPUs, one team wanting 24: it can hold all 23
    assert water_fill({"a": 24}, free(8, 8, 7)) == ({"a": 23}, [])


def test_under_shortage_a_share_is_whole_nodes_whatever_the_team_holds():
    # nodes of 8 and 4 GPUs, 13 wanted: the 4-GPU node goes to whoever can take it whole
    assert water_fill({"a": 1, "b": 12}, free(8, 4))[0] == {"b": 12}
    assert water_fill({"a": 1, "b": 12}, held((8, "b"), (4, None)))[0] == {"b": 12}


def test_shares_depend_on_node_sizes_not_on_who_holds_them():
    # 8 + 7 + 4 GPUs for a (8) and b (12): the 8 goes to a, the 7 and the 4 to b, whoever holds them
    first, _ = water_fill({"a": 8, "b": 12}, free(8, 7, 4))
    assert first == {"a": 8, "b": 11}
    assert water_fill({"a": 8, "b": 12}, held((8, "b"), (7, "a"), (4, "b")))[0] == first


def test_per_model_quotas_share_a_short_pool_max_min_fairly():
    p = programme(stage_yaml("s1", "2026-01-01", "[a, b, c]", "{a: {H100: 32}, b: {H100: 32}, c: {H100: 8}}"))
    result = plan(p, cluster(nodes("h100", 6)), t("2026-01-02 00:00"), KEYS)
    got = targets(result)
    assert got["c"] == {"H100": 8}
    assert sorted([got["a"]["H100"], got["b"]["H100"]]) == [16, 24]
    assert sum(c.allocated_gpus for c in result.consortia) == 48  # nothing left free while teams are short


def test_units_quota_takes_the_model_it_already_holds_first():
    p = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {units: 32}}"))
    snap = cluster(nodes("b200", 1, owner="a"), nodes("b200", 3, start=1), nodes("h100", 8))
    # H100 has more free units (64 vs 48) but the team already holds B200
    assert targets(plan(p, snap, t("2026-01-02 00:00"), KEYS)) == {"a": {"B200": 16}}


def test_units_quota_without_holdings_takes_the_model_with_the_most_free_units():
    p = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {units: 32}}"))
    snap = cluster(nodes("b200", 1), nodes("h100", 8))  # 16 B200 units, 64 H100 units
    assert targets(plan(p, snap, t("2026-01-02 00:00"), KEYS)) == {"a": {"H100": 32}}


def test_units_quotas_come_from_what_per_model_quotas_leave():
    p = programme(stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 48}, b: {units: 64}}"))
    snap = cluster(nodes("h100", 8), nodes("b200", 2))
    got = targets(plan(p, snap, t("2026-01-02 00:00"), KEYS))
    assert got["a"] == {"H100": 48}
    assert got["b"] == {"B200": 16, "H100": 16}  # 32 units of B200 + 16 H100 left by a = 48 of its 64


def _wind_down(mode_yaml, at):
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 64}}"),
        stage_yaml("s2", "2026-02-01", "[b]", "{b: {H100: 8}}", wind_down=mode_yaml),
    )
    snap = cluster(nodes("h100", 8, owner="a"), nodes("h100", 4, start=8))
    return plan(p, snap, at, KEYS).consortium("a")


def test_hold_keeps_the_whole_quota_during_grace():
    a = _wind_down("{mode: hold, gracePeriod: 10d}", t("2026-02-05 00:00"))
    assert a.status == "winding-down" and a.target == {"H100": 64} and a.draining_nodes == []


def test_step_keeps_keep_percent_of_the_quota():
    a = _wind_down("{mode: step, keepPercent: 25, gracePeriod: 10d}", t("2026-02-01 00:00"))
    assert a.target == {"H100": 16}
    assert len(a.nodes) == 2 and len(a.draining_nodes) == 6


def test_linear_shrinks_with_the_grace_period_left():
    a = _wind_down("{mode: linear, gracePeriod: 10d}", t("2026-02-06 00:00"))  # half left
    assert a.target == {"H100": 32}
    a = _wind_down("{mode: linear, gracePeriod: 10d}", t("2026-02-08 12:00"))  # a quarter left
    assert a.target == {"H100": 16}


def test_after_the_grace_period_a_cut_team_holds_nothing():
    a = _wind_down("{mode: hold, gracePeriod: 10d}", t("2026-02-11 00:00"))
    assert a.status == "eliminated" and a.target == {} and a.nodes == [] and len(a.draining_nodes) == 8


def test_a_winding_down_team_never_grows_beyond_what_it_holds():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 64}}"),
        stage_yaml("s2", "2026-02-01", "[b]", wind_down="{mode: hold}"),
    )
    snap = cluster(nodes("h100", 2, owner="a"), nodes("h100", 10, start=2))
    a = plan(p, snap, t("2026-02-02 00:00"), KEYS).consortium("a")
    assert a.target == {"H100": 16} and a.allocated == {"H100": 16}


def test_the_base_is_the_quota_so_a_second_reconcile_does_not_trim_again():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 64}}"),
        stage_yaml("s2", "2026-02-01", "[b]", wind_down="{mode: step, keepPercent: 50}"),
    )
    # after the first trim a holds 32 (4 nodes); the target stays 32, not 50% of 32
    snap = cluster(nodes("h100", 4, owner="a"), nodes("h100", 4, start=4))
    a = plan(p, snap, t("2026-02-03 00:00"), KEYS).consortium("a")
    assert a.target == {"H100": 32} and a.draining_nodes == []


def test_winding_down_holdings_are_served_before_active_quotas_under_shortage():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 32}}"),
        stage_yaml("s2", "2026-02-01", "[b]", "{b: {H100: 64}}", wind_down="{mode: hold}"),
    )
    snap = cluster(nodes("h100", 4, owner="a"), nodes("h100", 4, start=4))
    result = plan(p, snap, t("2026-02-01 00:00"), KEYS)
    assert result.consortium("a").target == {"H100": 32}
    assert result.consortium("b").target == {"H100": 32}
    assert result.consortium("a").draining_nodes == []


def test_pending_ineligible_and_eliminated_teams_get_nothing():
    p = programme(stage_yaml("s1", "2026-01-01", "[a, {consortium: b, from: 2026-02-01}]",
                             "{a: {H100: 8}, b: {H100: 8}}"))
    result = plan(p, cluster(nodes("h100", 4)), t("2026-01-10 00:00"), KEYS)
    assert result.consortium("b").status == "pending" and result.consortium("b").target == {}
    assert result.consortium("c").status == "ineligible" and result.consortium("c").target == {}
    assert result.consortium("b").quota == {"H100": 8}  # what it will get, shown while pending


def test_a_leftover_node_never_goes_to_a_team_whose_quota_is_smaller_than_a_node():
    assert water_fill({"a": 1, "b": 8}, free(8)) == ({"b": 8}, [])
