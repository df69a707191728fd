"""The sandbox holds a fleet-sized cluster: 10,000 nodes of about 8 KB each, loaded, listed,
selected and paged through by kubectl. Times are printed (run with -s), never asserted: the test
machines are shared and noisy; tests/benchmarks/ measures them."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from kubernetes import client

from scheduler.sandbox import SandboxServer

from .conftest import CONSORTIUM, api_client_for, node

N = 10_000


def big_node(i: int) -> dict:
    obj = node(f"b200-{i:05d}", {CONSORTIUM: ["lg", "skt", "upstage", "motif"][i % 4],
                                  "nvidia.com/gpu.product": "NVIDIA-B200",
                                  "kubernetes.io/hostname": f"b200-{i:05d}"})
    obj["metadata"]["annotations"] = {"gpu-scheduler.sovereign-ai.kr/telemetry": json.dumps(
        {"version": 1, "gpus": [{"index": g, "uuid": f"GPU-{i:05d}-{g}", "healthy": True} for g in range(8)]})}
    obj["status"]["images"] = [{"names": [f"registry.example/team/image-{k}@sha256:{'ab' * 32}",
                                          f"registry.example/team/image-{k}:v{k}"],
                                "sizeBytes": 1_000_000 + k} for k in range(40)]
    obj["status"]["addresses"] = [{"type": "InternalIP", "address": f"10.{i // 256 % 256}.{i % 256}.1"},
                                  {"type": "Hostname", "address": f"b200-{i:05d}"}]
    return obj


@pytest.fixture(scope="module")
def fleet() -> bytes:
    items = [big_node(i) for i in range(N)]
    data = msgspec.json.encode({"kind": "List", "apiVersion": "v1", "items": items})
    assert 7_000 <= len(data) / N <= 10_000  # about 8 KB a node
    return data


def test_ten_thousand_nodes_load_list_and_select(fleet: bytes, tmp_path):
    with SandboxServer() as srv:
        began = time.monotonic()
        assert srv.load_list(fleet) == N
        load_s = time.monotonic() - began
        with api_client_for(srv.write_kubeconfig(tmp_path / "kc")) as api:
            core = client.CoreV1Api(api)
            began = time.monotonic()
            resp = core.list_node(_preload_content=False)
            body = resp.data
            list_s = time.monotonic() - began
            decoded = msgspec.json.decode(body)
            assert len(decoded["items"]) == N
            assert len(body) > 70_000_000
            began = time.monotonic()
            selected = msgspec.json.decode(core.list_node(
                label_selector=f"{CONSORTIUM}=lg", _preload_content=False).data)
            select_s = time.monotonic() - began
            assert len(selected["items"]) == N // 4
    print(f"10,000 nodes: load {load_s:.2f}s, list {list_s:.2f}s, selected list {select_s:.2f}s")


def test_kubectl_pages_through_ten_thousand_nodes(fleet: bytes, kubectl, tmp_path):
    import subprocess

    with SandboxServer() as srv:
        srv.load_list(fleet)
        kc = srv.write_kubeconfig(tmp_path / "kc")
        began = time.monotonic()
        out = subprocess.run([str(kubectl), "--kubeconfig", str(kc), "--cache-dir", str(tmp_path / "c"),
                              "get", "nodes", "-L", CONSORTIUM, "--no-headers"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        took = time.monotonic() - began
        assert srv.requests[("list", "nodes")] == N // 500
    lines = out.splitlines()
    assert len(lines) == N and lines[0].split()[0] == "b200-00000" and lines[0].split()[-1] == "lg"
    print(f"kubectl get nodes over 10,000 nodes: {took:.2f}s")
