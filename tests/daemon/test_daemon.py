"""The daemon against the sandbox API over HTTP: reconcile, steady state, followers, bad policies,
and the scheduled change points firing on a scaled clock."""

import shutil
import threading
import time
from pathlib import Path

import pytest

from scheduler.cluster.kube import Writer, connect
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.daemon.clock import Clock
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Reconciler
from scheduler.daemon.service import Daemon
from scheduler.metrics import Metrics
from scheduler.policy import load_policy
from scheduler.sandbox import SandboxServer

from tests.builders import t

REPO = Path(__file__).resolve().parents[2]
PREFIX = "gpu-scheduler.sovereign-ai.kr/"


class Wall:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def world(tmp_path):
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    server = SandboxServer(port=0, seed=1).start()
    server.load_list(builtin_cluster(load_policy(tmp_path / "policies")))
    api = connect(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    source = PolicySource(tmp_path / "policies")
    source.reload()
    yield server, api, source, tmp_path
    api.close()
    server.stop()


def reconciler(api, source, clock, leader=True):
    return Reconciler(source, api, clock, Metrics(), Writer(api), is_leader=lambda: leader)


def writes(server):
    return sum(n for (verb, _), n in server.writes.items() if verb in ("create", "update", "patch", "delete"))


def ns_label(server, ns, key):
    return server.get("namespaces", ns)["metadata"].get("labels", {}).get(PREFIX + key)


def test_a_reconcile_writes_the_plan_and_the_next_one_writes_nothing(world):
    server, api, source, _ = world
    clock = Clock(start=t("2026-03-01 00:00"), wall=Wall())
    r = reconciler(api, source, clock)
    first = r.reconcile()
    assert first.writes > 0 and first.failed == 0
    assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"
    assert ns_label(server, "ncai-varco", "status") == "eliminated"
    before = writes(server)
    again = r.reconcile()
    assert again.writes == 0 and writes(server) == before  # steady state: zero writes


def test_a_follower_plans_but_never_writes(world):
    server, api, source, _ = world
    before = writes(server)
    outcome = reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall()), leader=False).reconcile()
    assert outcome.plan is not None and outcome.skipped == "not the leader"
    assert writes(server) == before


def test_round_one_trims_at_the_stage_start_and_drains_rather_than_yanks(world):
    server, api, source, _ = world
    wall = Wall()
    clock = Clock(start=t("2026-01-14 23:59:59"), wall=wall)
    r = reconciler(api, source, clock)
    r.reconcile()
    assert ns_label(server, "ncai-varco", "status") == "active"
    wall.now += 2
    outcome = r.reconcile()
    assert ns_label(server, "ncai-varco", "status") == "winding-down"
    assert ns_label(server, "lg-exaone", "stage") == "stage-2"
    lg = outcome.plan.consortium("lg")
    assert len(lg.draining_nodes) == 64  # LG leaves half its H100 for B200: drained, not yanked
    node = server.get("nodes", lg.draining_nodes[0])
    assert node["metadata"]["labels"][PREFIX + "node-state"] == "draining"
    assert PREFIX + "drain-deadline" in node["metadata"]["annotations"]
    assert {t_["key"] for t_ in node["spec"]["taints"]} == {PREFIX + "consortium", PREFIX + "draining"}
    assert not any(verb == "delete" for verb, _ in server.writes)  # nothing is ever deleted


def test_a_bad_policy_dropped_in_while_running_changes_nothing(world):
    server, api, source, folder = world
    r = reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall()))
    r.reconcile()
    before = writes(server)
    (folder / "policies" / "stages.yaml").write_text(
        (folder / "policies" / "stages.yaml").read_text().replace("lg: {B200: 512, H100: 512}", "lg: {B200: -1}"))
    assert source.reload().error is not None
    assert r.reconcile().writes == 0 and writes(server) == before
    assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"


def test_the_daemon_reconciles_at_a_change_point_on_a_scaled_clock(world):
    server, api, source, _ = world
    metrics = Metrics()
    # one programme hour per real second, starting 2 programme hours before stage 2
    clock = Clock(start=t("2026-01-14 22:00"), scale=3600)
    r = Reconciler(source, api, clock, metrics, Writer(api))
    daemon = Daemon(r, source, clock, metrics, reconcile_every=3600)  # no periodic help: the change point must fire
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while ns_label(server, "lg-exaone", "stage") != "stage-2" and time.monotonic() < deadline:
            server.wait_for_change(timeout=1)
        assert ns_label(server, "lg-exaone", "stage") == "stage-2"
        assert daemon.ready() == (True, "")
    finally:
        daemon.stop()
