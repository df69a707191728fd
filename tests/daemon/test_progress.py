"""The line `run --simulate` prints every few seconds: where the programme stands, for people."""

from pathlib import Path

from scheduler.cluster import decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.daemon.progress import progress_line
from scheduler.planner.simulate import settle
from scheduler.policy import load_policy
from tests.builders import t
from tests.keys import KEYS
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster

POLICY = one_cluster_policy()


def planned(at: str):
    snapshot = decode_snapshot(dumps(builtin_cluster(POLICY)), KEYS)
    result, _ = settle(POLICY, snapshot, t(at), KEYS)
    return result


def test_the_line_says_time_stage_each_team_and_what_comes_next():
    line = progress_line(planned("2026-03-01 00:00"), t("2026-03-01 09:30"))
    when_and_stage, teams, nxt = line.split(" | ")
    assert when_and_stage == "[2026-03-01 09:30 KST] stage-2"
    assert teams == "GPUs held/target: lg 1024/1024, motif 768/768, skt 0/0 pending, upstage 1024/1024"
    # ncai and naver were eliminated in round 1: they hold nothing and wait for nothing
    assert nxt.startswith("next: ") and "\n" not in line


def test_after_the_last_change_the_line_says_the_programme_is_over():
    line = progress_line(planned("2028-01-01 00:00"), t("2028-01-01 00:00"))
    assert line == ("[2028-01-01 00:00 KST] stage-2 (stage-4 undecided) | GPUs held/target: lg 512/512 (short H100:512), "
                    "motif 768/768, skt 512/512, upstage 512/512 (short H100:512) | "
                    "no change ahead: the programme as written is over")
