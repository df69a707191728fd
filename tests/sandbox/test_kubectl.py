"""The real kubectl v1.35 against the sandbox: the commands operators and consortium engineers
run (`get -L`, `label`, `get events -A`, `-o json`), with aggregated discovery and without."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.sandbox import SandboxServer

from .conftest import CONSORTIUM, node, pod, v1_list

STATUS = "gpu-scheduler.sovereign-ai.kr/status"


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary, self.kubeconfig, self.home = binary, kubeconfig, home

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig),
             "--cache-dir", str(self.home / "cache"), *args],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig)})
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"
        return done

    def table(self, *args: str) -> list[list[str]]:
        return [line.split() for line in self.run(*args).stdout.splitlines()]


@pytest.fixture(params=[True, False], ids=["aggregated-discovery", "legacy-discovery"])
def cluster(request, tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(aggregated_discovery=request.param) as srv:
        srv.load_list(v1_list(
            node("b200-0001", {CONSORTIUM: "lg", "node-role.kubernetes.io/gpu": ""}),
            node("b200-0002", {CONSORTIUM: "skt"}, ready=False),
            node("h100-0001", spec={"unschedulable": True}),
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "lg-exaone", "labels": {CONSORTIUM: "lg", STATUS: "active"}},
             "status": {"phase": "Active"}},
            {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "lg-exaone.1", "namespace": "lg-exaone"},
             "involvedObject": {"kind": "Namespace", "name": "lg-exaone", "namespace": "lg-exaone"},
             "reason": "QuotaChanged", "message": "B200 0 -> 512", "type": "Normal",
             "count": 1, "source": {"component": "gpu-scheduler"}},
            {**pod("train-0", "lg-exaone", node_name="b200-0001", gpus=8),
             "status": {"phase": "Running", "podIP": "10.0.0.7",
                        "containerStatuses": [{"name": "main", "ready": True, "restartCount": 2}]}},
        ))
        yield srv


@pytest.fixture
def kc(kubectl: Path, cluster: SandboxServer, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl, cluster.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def test_get_nodes_with_a_label_column(kc: Kubectl):
    rows = kc.table("get", "nodes", "-L", CONSORTIUM)
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "CONSORTIUM"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["b200-0001"][1:3] == ["Ready", "gpu"]
    assert by_name["b200-0001"][-1] == "lg"
    assert by_name["b200-0002"][1] == "NotReady" and by_name["b200-0002"][-1] == "skt"
    assert by_name["h100-0001"][1] == "Ready,SchedulingDisabled" and by_name["h100-0001"][2] == "<none>"
    assert by_name["h100-0001"][4] == "v1.35.0" and len(by_name["h100-0001"]) == 5  # empty label column


def test_get_nodes_wide_and_by_label_selector(kc: Kubectl):
    rows = kc.table("get", "nodes", "-o", "wide", "-l", f"{CONSORTIUM}=lg")
    assert rows[0][:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert [r[0] for r in rows[1:]] == ["b200-0001"]


def test_get_namespaces_with_label_columns(kc: Kubectl):
    rows = kc.table("get", "ns", "-L", CONSORTIUM, "-L", STATUS)
    assert rows[0] == ["NAME", "STATUS", "AGE", "CONSORTIUM", "STATUS"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["lg-exaone"][1] == "Active" and by_name["lg-exaone"][3:] == ["lg", "active"]
    assert set(by_name) == {"default", "kube-node-lease", "kube-public", "kube-system", "lg-exaone"}


def test_label_a_node_then_read_it_back(kc: Kubectl, cluster: SandboxServer):
    out = kc.run("label", "node", "b200-0002", f"{CONSORTIUM}=upstage", "--overwrite").stdout
    assert out.strip() == "node/b200-0002 labeled"
    assert cluster.get("nodes", "b200-0002")["metadata"]["labels"][CONSORTIUM] == "upstage"
    rows = kc.table("get", "node", "b200-0002", "-L", CONSORTIUM)
    assert rows[1][0] == "b200-0002" and rows[1][-1] == "upstage"
    assert cluster.writes[("patch", "nodes")] == 1


def test_label_without_overwrite_refuses_to_change_a_label(kc: Kubectl, cluster: SandboxServer):
    done = kc.run("label", "node", "b200-0001", f"{CONSORTIUM}=skt", ok=False)
    assert done.returncode != 0 and "already has a value (lg)" in done.stderr
    assert cluster.get("nodes", "b200-0001")["metadata"]["labels"][CONSORTIUM] == "lg"


def test_label_and_unlabel_a_namespace(kc: Kubectl, cluster: SandboxServer):
    kc.run("label", "ns", "lg-exaone", "gpu-scheduler.sovereign-ai.kr/stage=stage-2")
    assert cluster.get("namespaces", "lg-exaone")["metadata"]["labels"][
        "gpu-scheduler.sovereign-ai.kr/stage"] == "stage-2"
    kc.run("label", "ns", "lg-exaone", f"{STATUS}-")
    assert STATUS not in cluster.get("namespaces", "lg-exaone")["metadata"]["labels"]


def test_get_events_in_all_namespaces(kc: Kubectl, cluster: SandboxServer):
    cluster.put({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                 "metadata": {"name": "n1.2", "namespace": "default"},
                 "eventTime": "2026-11-30T00:00:00.000000Z", "reportingController": "gpu-scheduler",
                 "reportingInstance": "gpu-scheduler-0", "action": "Drain", "reason": "NodeDraining",
                 "regarding": {"kind": "Node", "name": "b200-0002"}, "note": "lease ends", "type": "Warning"})
    lines = kc.run("get", "events", "-A").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"default", "lg-exaone"}
    assert rows["lg-exaone"].split()[2:5] == ["Normal", "QuotaChanged", "namespace/lg-exaone"]
    assert rows["lg-exaone"].endswith("B200 0 -> 512")
    assert rows["default"].split()[2:5] == ["Warning", "NodeDraining", "node/b200-0002"]
    assert rows["default"].endswith("lease ends")


def test_get_nodes_as_json(kc: Kubectl):
    doc = json.loads(kc.run("get", "nodes", "-o", "json").stdout)
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    assert [n["metadata"]["name"] for n in doc["items"]] == ["b200-0001", "b200-0002", "h100-0001"]
    first = doc["items"][0]
    assert first["kind"] == "Node" and first["status"]["allocatable"]["nvidia.com/gpu"] == "8"


def test_get_pods_and_quota_and_leases(kc: Kubectl, cluster: SandboxServer):
    rows = kc.table("get", "pods", "-A", "-o", "wide")
    assert rows[0][:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1][:5] == ["lg-exaone", "train-0", "1/1", "Running", "2"]
    assert rows[1][-4:-2] == ["10.0.0.7", "b200-0001"]
    cluster.put({"apiVersion": "v1", "kind": "ResourceQuota",
                 "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone"},
                 "spec": {"hard": {"requests.nvidia.com/gpu": "512"}},
                 "status": {"hard": {"requests.nvidia.com/gpu": "512"}, "used": {"requests.nvidia.com/gpu": "8"}}})
    out = kc.run("get", "quota", "-n", "lg-exaone").stdout
    assert "requests.nvidia.com/gpu: 8/512" in out
    cluster.put({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "gpu-scheduler", "namespace": "kube-system"},
                 "spec": {"holderIdentity": "gpu-scheduler-7d9f"}})
    assert kc.table("get", "leases", "-n", "kube-system")[1][:2] == ["gpu-scheduler", "gpu-scheduler-7d9f"]


def test_kubectl_reads_discovery_the_way_the_server_offers_it(kc: Kubectl, cluster: SandboxServer):
    kc.run("get", "nodes")
    paths = [r.path for r in cluster.request_log]
    assert "/api" in paths and "/apis" in paths
    assert not any(p.startswith("/openapi") for p in paths)
    aggregated = cluster._aggregated
    assert ("/api/v1" in paths) is (not aggregated)
    assert ("/apis/coordination.k8s.io/v1" in paths) is (not aggregated)


def test_get_nodes_watch_prints_each_change(kc: Kubectl, cluster: SandboxServer):
    import queue
    import threading

    proc = subprocess.Popen(
        [str(kc.binary), "--kubeconfig", str(kc.kubeconfig), "--cache-dir", str(kc.home / "cache"),
         "get", "nodes", "b200-0002", "-w", "-L", CONSORTIUM],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HOME": str(kc.home)})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        assert lines.get(timeout=30).split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "CONSORTIUM"]
        assert lines.get(timeout=30).split()[:2] == ["b200-0002", "NotReady"]
        assert cluster.wait_for_watchers(1, "nodes", timeout=30)
        cluster.put(node("b200-0002", {CONSORTIUM: "upstage"}))
        changed = lines.get(timeout=30).split()
        assert changed[:2] == ["b200-0002", "Ready"] and changed[-1] == "upstage"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
