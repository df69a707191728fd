"""The commands on the real programme across its clusters, as a user runs them: `plan` on one
file per cluster, `status` over every context of one kubeconfig, and `run --simulate`, which
starts one sandbox API per cluster (what `make run` does)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scheduler.cli import main
from scheduler.cluster.synthetic import builtin_clusters
from scheduler.policy import load_policy
from scheduler.sandbox import SandboxServer
from scheduler.sandbox.kubeconfig import write_combined

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = ["nhn-a", "nhn-b", "kakao", "skt-haein", "naver"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cluster_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clusters")
    out = []
    for name, cluster in builtin_clusters(load_policy(REPO / "policies")).items():
        (folder / f"{name}.json").write_text(json.dumps(cluster))
        out += ["--cluster", f"{name}={folder / name}.json"]
    return out


def test_plan_reads_one_file_per_cluster_and_names_nodes_by_cluster(capsys, cluster_files):
    code, out, _ = run(capsys, "plan", *cluster_files, "--at", "2026-03-01", "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert [c["name"] for c in doc["clusters"]] == CLUSTERS and all(c["up"] for c in doc["clusters"])
    lg = next(c for c in doc["consortia"] if c["name"] == "lg")
    assert all(n.split("/", 1)[0] in CLUSTERS for n in lg["nodes"])
    assert sum(sum(per.values()) for per in lg["clusters"].values()) == sum(lg["allocated"].values()) == 1024
    assert {p["name"]: p["cluster"] for p in doc["pools"]}["gov-b200-c"] == "kakao"
    code, table, _ = run(capsys, "plan", *cluster_files, "--at", "2026-03-01", "-o", "table")
    assert "CLUSTER    UP   NODES  HEALTHY  ASSIGNED  HELD BY" in table


def test_a_file_for_an_unknown_cluster_is_a_clear_error(capsys, cluster_files):
    code, _, err = run(capsys, "plan", "--cluster", "kakaoo=x.json", "--at", "2026-03-01")
    assert code == 2
    assert "a programme of several clusters takes NAME=FILE, NAME one of nhn-a, nhn-b, kakao" in err
    assert "did you mean 'kakao'?" in err


def test_status_reads_every_context_and_shows_the_cluster_of_each_row(capsys, tmp_path):
    from scheduler.cluster import decode_snapshot
    from scheduler.cluster.fleet import combine, part
    from scheduler.cluster.synthetic import dumps
    from scheduler.planner.simulate import settle
    from tests.builders import t
    from tests.keys import KEYS

    policy = load_policy(REPO / "policies")
    clusters = builtin_clusters(policy)
    whole = combine({n: decode_snapshot(dumps(c), KEYS) for n, c in clusters.items()})
    _, after = settle(policy, whole, t("2026-03-01 00:00"), KEYS)
    servers = {}
    try:
        for name in CLUSTERS:
            server = servers[name] = SandboxServer(port=0).start()
            mine = part(after, name)
            if name == "kakao":  # the teams' namespaces were never made there
                mine = mine.replace(namespaces={}, quotas={})
            server.load_list({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": ns.name, "labels": dict(ns.labels), "annotations": dict(ns.annotations)}}
                for ns in mine.namespaces.values()] + [
                {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": ns},
                 "spec": {"hard": {"requests.nvidia.com/gpu": hard}}} for ns, hard in mine.quotas.items()]})
        kubeconfig = write_combined(tmp_path / "kubeconfig", {n: (s.url, s.token) for n, s in servers.items()},
                                    current="nhn-a")
        code, out, _ = run(capsys, "status", "--kubeconfig", str(kubeconfig), "--all-contexts", "-o", "json")
        assert code == 0
        rows = json.loads(out)
        assert {r["cluster"] for r in rows} == set(CLUSTERS) - {"kakao"}
        lg = {r["cluster"]: r for r in rows if r["consortium"] == "lg"}
        assert all(r["allocated_gpus"] == "1024" for r in lg.values())
        held = {c: sum(per.values()) for c, per in next(iter(lg.values()))["clusters"].items()}
        assert sum(held.values()) == 1024
        assert {c: int(r["resource_quota"]) for c, r in lg.items()} == {c: held.get(c, 0) for c in lg}
        code, table, _ = run(capsys, "status", "--kubeconfig", str(kubeconfig), "--all-contexts", "-o", "table")
        assert table.startswith("CLUSTER")
        holders = {r["consortium"] for r in rows if r["clusters"].get("kakao")}
        assert holders and all(f"{c} holds " in table and "in cluster kakao, where none of its namespaces exists"
                               in table for c in holders)
        servers["naver"].stop()
        code, table, _ = run(capsys, "status", "--kubeconfig", str(kubeconfig), "--all-contexts", "-o", "table")
        assert code == 0 and "cluster naver: cannot read it" in table and "nhn-a" in table
    finally:
        for s in servers.values():
            s.stop()


def test_run_simulate_starts_one_sandbox_api_per_cluster_and_plays_the_programme_on_all(tmp_path):
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", "--simulate", "--metrics-port", "0",
                                 "--start", "2026-03-01", "--time-scale", "60", "--reconcile-every", "1"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not all(
                    f"in cluster {c}:" in log.read_text() for c in CLUSTERS):
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            text = log.read_text()
            assert "sandbox APIs, one per cluster: nhn-a on http://127.0.0.1:" in text
            for c in CLUSTERS:
                assert f"--context {c} get ns -L" in text and f"cluster {c}: through" in text
            kubeconfig = re.search(r"--kubeconfig (\S+) --all-contexts", text).group(1)
            status = subprocess.run([sys.executable, "-m", "scheduler.cli", "status", "--kubeconfig", kubeconfig,
                                     "--all-contexts", "-o", "json"], capture_output=True, text=True, cwd=REPO,
                                    timeout=60)
            rows = json.loads(status.stdout)
            assert {r["cluster"] for r in rows} == set(CLUSTERS)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
