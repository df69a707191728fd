"""Loading `kubectl get ... -o json` output, in process and from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.sandbox import SandboxServer

from .conftest import CONSORTIUM, REPO, api_client_for, node, pod, v1_list


def cluster_dump() -> dict:
    return v1_list(
        node("b200-0001", {CONSORTIUM: "lg"}),
        node("b200-0002"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lg-exaone", "uid": "u-1"},
         "status": {"phase": "Active"}},
        {"apiVersion": "v1", "kind": "ResourceQuota",
         "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone"},
         "spec": {"hard": {"requests.nvidia.com/gpu": "8"}}},
        {**pod("train-0", "lg-exaone", node_name="b200-0001", gpus=8),
         "status": {"phase": "Running"}},
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "lg-exaone"},
         "involvedObject": {"kind": "Namespace", "name": "lg-exaone", "namespace": "lg-exaone"},
         "reason": "StageEntered", "message": "stage-2", "type": "Normal"},
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "gpu-scheduler", "namespace": "kube-system"}, "spec": {"holderIdentity": "a"}},
    )


def test_load_list_keeps_statuses_and_system_fields(server):
    assert server.load_list(json.dumps(cluster_dump()).encode()) == 7
    assert server.get("pods", "train-0", "lg-exaone")["status"]["phase"] == "Running"
    assert server.get("namespaces", "lg-exaone")["metadata"]["uid"] == "u-1"
    assert server.get("leases", "gpu-scheduler", "kube-system")["spec"]["holderIdentity"] == "a"
    assert server.get("nodes", "b200-0002")["metadata"]["creationTimestamp"]


def test_loaded_objects_are_served_to_the_client(server, core):
    server.load_list(cluster_dump())
    assert [n.metadata.name for n in core.list_node(label_selector=CONSORTIUM).items] == ["b200-0001"]
    assert core.list_namespaced_pod("lg-exaone", field_selector="spec.nodeName=b200-0001").items


def test_a_typed_list_without_item_kinds_loads(server):
    items = [{k: v for k, v in node(f"n{i}").items() if k not in ("kind", "apiVersion")} for i in range(3)]
    assert server.load_list({"kind": "NodeList", "apiVersion": "v1", "items": items}) == 3
    assert server.count("nodes") == 3


def test_loading_again_replaces(server):
    server.load_list(v1_list(node("n1", {"a": "1"})))
    server.load_list(v1_list(node("n1", {"a": "2"})))
    assert server.get("nodes", "n1")["metadata"]["labels"] == {"a": "2"}


def test_a_kind_that_is_not_served_is_refused_and_nothing_is_loaded(server):
    with pytest.raises(ValueError, match="Deployment"):
        server.load_list(v1_list(node("n1"), {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "metadata": {"name": "d"}}))
    assert server.count("nodes") == 0


def test_load_list_from_a_file(server, tmp_path: Path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(cluster_dump()))
    assert server.load_list(path) == 7


def test_the_command_line_serves_a_loaded_file_until_sigterm(tmp_path: Path):
    dump = tmp_path / "cluster.json"
    dump.write_text(json.dumps(cluster_dump()))
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "scheduler.sandbox", "--load", str(dump),
                             "--port", "0", "--kubeconfig", str(kubeconfig)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox: serving on http://127.0.0.1:"), proc.stderr.read()
        from kubernetes import client
        with api_client_for(kubeconfig) as api:
            names = [n.metadata.name for n in client.CoreV1Api(api).list_node().items]
        assert names == ["b200-0001", "b200-0002"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_command_line_refuses_a_bad_file(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(v1_list({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})))
    from scheduler.sandbox.__main__ import main
    assert main(["--load", str(bad)]) == 2


def test_server_as_a_context_manager_stops():
    with SandboxServer() as srv:
        url = srv.url
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = srv.url
