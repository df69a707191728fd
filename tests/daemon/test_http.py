"""The daemon's HTTP endpoints, over real HTTP."""

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.cluster import decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.observability.http import HealthServer
from scheduler.daemon.metrics import Metrics
from scheduler.planner import plan
from scheduler.policy import load_policy

from tests.builders import t
from tests.keys import KEYS
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster


@pytest.fixture
def served():
    metrics = Metrics()
    state = {"ready": (False, "caches not synced")}
    server = HealthServer(metrics.registry, lambda: state["ready"], host="127.0.0.1", port=0).start()
    yield metrics, state, f"http://127.0.0.1:{server.port}"
    server.stop()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_healthz_answers_while_the_process_lives(served):
    _, _, base = served
    assert get(base + "/healthz") == (200, "ok\n")


def test_readyz_waits_for_synced_caches_and_a_policy(served):
    _, state, base = served
    assert get(base + "/readyz") == (503, "caches not synced\n")
    state["ready"] = (True, "")
    assert get(base + "/readyz") == (200, "ready\n")


def test_metrics_expose_the_latest_plan_and_drop_what_disappeared(served):
    metrics, _, base = served
    policy = one_cluster_policy()
    snap = decode_snapshot(dumps(builtin_cluster(policy)), KEYS)
    metrics.observe_plan(plan(policy, snap, t("2026-03-01 00:00"), KEYS))
    metrics.reconcile_total.labels("success").inc()
    metrics.set_policy(policy.sha256, True)
    status, text = get(base + "/metrics")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("gpu_scheduler_quota_gpus", (("consortium", "lg"), ("gpu_model", "B200"), ("stage", "stage-2")))] == 512
    assert samples[("gpu_scheduler_consortium_status", (("consortium", "ncai"), ("status", "eliminated")))] == 1
    assert samples[("gpu_scheduler_reconcile_total", (("result", "success"),))] == 1
    assert samples[("gpu_scheduler_policy_info", (("sha256", policy.sha256),))] == 1
    metrics.observe_plan(plan(policy, snap, t("2025-09-01 00:00"), KEYS))
    _, text = get(base + "/metrics")
    assert 'consortium="motif",gpu_model="H100"' not in text  # not in stage-1: gone, not stale
    assert 'stage="stage-1"' in text


def test_unknown_paths_are_404(served):
    _, _, base = served
    assert get(base + "/nope")[0] == 404
