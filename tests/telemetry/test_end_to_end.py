"""The agent and the controller together, over HTTP against the sandbox API: a GPU fails on a
team's node, the real `gpu-scheduler agent` publishes it, and the controller's next plan counts
7 GPUs on that node and gives the team a healthy free node in exchange. Telemetry that is too old
is ignored (the node counts its allocatable GPUs), never read as zero GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from scheduler.actuator.writer import Writer
from scheduler.actuator.connect import connect
from scheduler.daemon.clock import Clock
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Reconciler
from scheduler.daemon.metrics import Metrics
from scheduler.sandbox import SandboxServer
from tests.builders import program_yaml, stage_yaml
from tests.sandbox.conftest import node
from tests.keys import KEYS
from scheduler.actuator.watch import ClusterReader

FIXTURES = Path(__file__).parent / "fixtures"
TELEMETRY = "gpu-scheduler.sovereign-ai.kr/telemetry"
CONSORTIUM = "gpu-scheduler.sovereign-ai.kr/consortium"


@pytest.fixture
def cluster(tmp_path):
    """Three 8-GPU H200 nodes; team a's quota is two of them."""
    (tmp_path / "policies").mkdir()
    pools = ("{name: h200, gpuModel: H200, nodeSelector: {pool: h200}}",)
    (tmp_path / "policies" / "program.yaml").write_text(
        program_yaml(consortia="a b", pools=pools, models="{H200: {units: 1}}"))
    (tmp_path / "policies" / "stages.yaml").write_text(
        stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a, b]", "{a: {H200: 16}}"))
    server = SandboxServer(port=0, seed=3).start()
    server.load_list({"apiVersion": "v1", "kind": "List", "items": [
        node(f"h200-{i}", {"pool": "h200"}) for i in range(3)] + [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("a-ns", "b-ns")]})
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    api = connect(str(kubeconfig))
    source = PolicySource(tmp_path / "policies")
    source.reload()
    metrics = Metrics()
    reconciler = Reconciler(source, ClusterReader(api, KEYS), Clock(), metrics, Writer(api))
    yield server, reconciler, metrics, kubeconfig
    api.close()
    server.stop()


def agent_once(kubeconfig: Path, node_name: str, fake: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scheduler.cli", "agent", "--once", "--kubeconfig", str(kubeconfig),
                           "--node-name", node_name, "--nvml-fake", str(fake)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # a real run writes the annotation, prints nothing


def annotate(reconciler, name: str, report: dict) -> None:
    from kubernetes import client

    client.CoreV1Api(reconciler.reader.api).patch_node(name, {"metadata": {"annotations": {TELEMETRY: json.dumps(report)}}})


def held_by(server, team: str) -> list[str]:
    return sorted(n["metadata"]["name"] for n in server.list("nodes")
                  if n["metadata"].get("labels", {}).get(CONSORTIUM) == team)


def test_a_failed_gpu_published_by_the_agent_gets_the_team_a_healthy_node(cluster):
    server, reconciler, metrics, kubeconfig = cluster
    reconciler.reconcile()
    mine = held_by(server, "a")
    assert len(mine) == 2
    sick = mine[0]

    agent_once(kubeconfig, sick, FIXTURES / "dgx-h200-xid79.json")
    report = json.loads(server.get("nodes", sick)["metadata"]["annotations"][TELEMETRY])
    assert report["healthy_gpus"] == 7 and report["gpus"][3]["reason"] == "xid-79"

    outcome = reconciler.reconcile()
    plan = outcome.plan
    pool = plan.pools[0]
    assert pool.capacity_gpus == 24 and pool.healthy_gpus == 23  # 7 GPUs counted on the sick node
    a = plan.consortium("a")
    assert a.allocated == {"H200": 16}  # whole again, on healthy nodes
    assert sick in a.draining_nodes and sick not in a.nodes
    assert [x.node for x in plan.actions if x.action == "assign"] == [n for n in ["h200-0", "h200-1", "h200-2"]
                                                                     if n not in mine]
    # the sick node is drained (tainted) rather than yanked; the replacement carries a's label
    assert server.get("nodes", sick)["metadata"]["labels"]["gpu-scheduler.sovereign-ai.kr/node-state"] == "draining"
    assert len(held_by(server, "a")) == 3


def test_every_gpu_healthy_changes_nothing(cluster):
    server, reconciler, _, kubeconfig = cluster
    reconciler.reconcile()
    for name in held_by(server, "a"):
        agent_once(kubeconfig, name, FIXTURES / "dgx-h200.json")
    outcome = reconciler.reconcile()
    assert outcome.plan.pools[0].healthy_gpus == 24
    assert [x for x in outcome.plan.actions if x.action in ("assign", "drain")] == []


def test_stale_telemetry_is_ignored_and_counted_never_read_as_zero_gpus(cluster):
    server, reconciler, metrics, _ = cluster
    reconciler.reconcile()
    old = (datetime.now(timezone.utc) - timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dead = {"version": 1, "timestamp": old, "total_gpus": 8, "healthy_gpus": 0, "gpus": []}
    name = held_by(server, "a")[0]
    annotate(reconciler, name, dead)

    plan = reconciler.reconcile().plan
    assert plan.telemetry_stale_nodes == 1
    assert plan.pools[0].healthy_gpus == 24  # the stale report's "0 healthy" is not believed
    assert name in plan.consortium("a").nodes
    exposition = generate_latest(metrics.registry).decode()
    assert "gpu_scheduler_telemetry_stale_nodes 1.0" in exposition

    fresh = dict(dead, timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    annotate(reconciler, name, fresh)
    plan = reconciler.reconcile().plan
    assert plan.telemetry_stale_nodes == 0 and plan.pools[0].healthy_gpus == 16  # fresh: believed
