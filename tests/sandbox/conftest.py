"""Fixtures: a started sandbox, a kubeconfig for it, and the official client configured from that
kubeconfig (as the daemon is). Builders make the objects a test needs in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from scheduler.sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[2]
CONSORTIUM = "gpu-scheduler.sovereign-ai.kr/consortium"


@pytest.fixture
def kubeconfig(server: SandboxServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig")


def api_client_for(path: Path) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    with api_client_for(kubeconfig) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)




# -- builders ------------------------------------------------------------------------------------
def node(name: str, labels: dict[str, str] | None = None, gpus: int = 8, ready: bool = True,
         **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "224", "memory": "2Ti"},
            "capacity": {"nvidia.com/gpu": str(gpus), "cpu": "224", "memory": "2Ti"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {
                "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.8.0", "kubeProxyVersion": "", "kubeletVersion": "v1.35.0",
                "machineID": "m", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.3 LTS",
                "systemUUID": "s"},
        },
    }
    obj.update(extra)
    return obj


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def pod(name: str, namespace_: str = "default", node_name: str = "", gpus: int = 0,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "trainer:1", "resources": resources}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace_, "labels": dict(labels or {})},
            "spec": spec}


def v1_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": list(items)}


def raw(server: SandboxServer, method: str, path: str, body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request: (status, headers, body)."""
    import http.client
    import json as _json

    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        data = body if isinstance(body, bytes) or body is None else _json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
