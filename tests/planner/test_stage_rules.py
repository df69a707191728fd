"""Who is in the programme when: the stage in force, pending rounds, statuses at every boundary."""

from datetime import timedelta

from scheduler.cluster import Snapshot
from scheduler.planner import plan
from scheduler.planner.statuses import stage_in_force, standings

from tests.builders import programme, stage_yaml, t
from tests.keys import KEYS

SECOND = timedelta(seconds=1)

PROGRAMME = programme(
    stage_yaml("stage-1", "2026-01-01", "[a, b, c]", "{a: {H100: 16}, b: {H100: 16}, c: {H100: 16}}"),
    stage_yaml("stage-2", "2026-03-01", "[a, {consortium: b, from: 2026-03-10}]", "{a: {H100: 16}, b: {H100: 16}}",
               wind_down="{gracePeriod: 7d, mode: step, keepPercent: 50}"),
    stage_yaml("stage-3", "2026-06-01", "pending"),
)


def status(at, name):
    return standings(PROGRAMME, at)[name].status


def test_nobody_is_eligible_before_the_first_stage():
    assert stage_in_force(PROGRAMME, t("2026-01-01 00:00") - SECOND).stage is None
    assert {s.status for s in standings(PROGRAMME, t("2025-12-31 23:59")).values()} == {"ineligible"}


def test_the_stage_in_force_is_the_latest_started_one():
    assert stage_in_force(PROGRAMME, t("2026-03-01 00:00") - SECOND).stage.metadata.name == "stage-1"
    assert stage_in_force(PROGRAMME, t("2026-03-01 00:00")).stage.metadata.name == "stage-2"


def test_a_team_dropped_from_the_next_stage_winds_down_from_its_start_then_is_eliminated():
    start = t("2026-03-01 00:00")
    assert status(start - SECOND, "c") == "active"
    assert status(start, "c") == "winding-down"
    assert status(start + timedelta(days=7) - SECOND, "c") == "winding-down"
    assert status(start + timedelta(days=7), "c") == "eliminated"


def test_a_team_listed_with_a_later_from_is_pending_until_then():
    assert status(t("2026-03-10 00:00") - SECOND, "b") == "pending"
    assert status(t("2026-03-10 00:00"), "b") == "active"


def test_a_pending_round_keeps_the_last_decided_stage_in_force_and_flags_it():
    at = t("2026-06-01 00:00")
    force = stage_in_force(PROGRAMME, at)
    assert force.stage.metadata.name == "stage-2"
    assert force.pending.metadata.name == "stage-3"
    result = plan(PROGRAMME, Snapshot(), at, KEYS)
    assert result.decision_pending and result.stage == "stage-2" and result.pending_stage == "stage-3"
    assert not plan(PROGRAMME, Snapshot(), at - SECOND, KEYS).decision_pending


def test_eliminated_stays_eliminated_in_later_stages_and_never_listed_is_ineligible():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]"),
        stage_yaml("s2", "2026-02-01", "[a]"),
        stage_yaml("s3", "2026-04-01", "[a]"),
    )
    later = standings(p, t("2026-05-01 00:00"))
    assert later["b"].status == "eliminated"
    assert later["c"].status == "ineligible"


def test_a_readmitted_team_is_active_again():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{b: {H100: 8}}"),
        stage_yaml("s2", "2026-02-01", "[a]"),
        stage_yaml("s3", "2026-04-01", "[a, b]", "{b: {H100: 16}}"),
    )
    assert standings(p, t("2026-03-01 00:00"))["b"].status == "eliminated"
    back = standings(p, t("2026-04-01 00:00"))["b"]
    assert back.status == "active" and back.quota == {"H100": 16}


def test_the_wind_down_base_is_the_quota_in_the_previous_decided_stage():
    s = standings(PROGRAMME, t("2026-03-02 00:00"))["c"]
    assert s.elimination.base == {"H100": 16}
    assert s.elimination.wind_down.keepPercent == 50  # the stage's override
    assert s.elimination.wind_down.drainTimeout == timedelta(hours=2)  # the programme's default


def test_a_grace_period_runs_on_into_the_next_stage():
    p = programme(
        stage_yaml("s1", "2026-01-01", "[a, b]", "{b: {H100: 16}}"),
        stage_yaml("s2", "2026-02-01", "[a]", wind_down="{gracePeriod: 30d}"),
        stage_yaml("s3", "2026-02-10", "[a]"),
    )
    assert standings(p, t("2026-02-20 00:00"))["b"].status == "winding-down"
    assert standings(p, t("2026-03-03 00:00"))["b"].status == "eliminated"


def test_the_real_programme_round_one():
    from scheduler.policy import load_policy

    real = load_policy("policies")
    before = standings(real, t("2026-01-15 18:00") - SECOND)  # announced that afternoon
    after = standings(real, t("2026-01-15 18:00"))
    assert {c: s.status for c, s in before.items()} == {
        "lg": "active", "skt": "active", "upstage": "active", "naver": "active", "ncai": "active", "motif": "ineligible"}
    assert {c: s.status for c, s in after.items()} == {  # a cut team loses its GPUs at once: no grace period
        "lg": "active", "skt": "pending", "upstage": "active", "naver": "eliminated", "ncai": "eliminated",
        "motif": "pending"}
    assert standings(real, t("2026-02-20 00:00"))["motif"].status == "active"
    assert standings(real, t("2026-07-01 00:00"))["skt"].status == "active"
    assert stage_in_force(real, t("2026-11-30 12:00")).pending.metadata.name == "stage-3"
