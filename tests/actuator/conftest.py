"""Fixtures for the Kubernetes edge: the real programme and its built-in cluster, a started
sandbox API server, and an API client connected to it the way the daemon connects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from scheduler.actuator.connect import connect
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.policy import Policy, load_policy
from scheduler.sandbox import SandboxServer
from tests.builders import t
from tests.realpolicy import one_cluster_policy

REPO = Path(__file__).resolve().parents[2]
MARCH_2026 = t("2026-03-01 00:00")


class FakeSleep:
    """Records the waits a Writer asks for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="session")
def real_policy() -> Policy:
    """The real programme as if all its pools sat in one cluster (tests/realpolicy.py): these tests
    drive one API server; tests/daemon/test_clusters.py drives the programme's five."""
    return one_cluster_policy()


@pytest.fixture(scope="session")
def real_cluster(real_policy: Policy) -> dict[str, Any]:
    """The built-in cluster sized from the real programme (`run --simulate`'s default)."""
    return builtin_cluster(real_policy)


@pytest.fixture
def api(server: SandboxServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    with connect(str(server.write_kubeconfig(tmp_path / "kubeconfig"))) as api_client:
        yield api_client


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


def deletes(server: SandboxServer) -> dict[tuple[str, str], int]:
    """Every delete the sandbox served: the scheduler must never delete anything."""
    return {k: n for k, n in server.writes.items() if k[0] in ("delete", "deletecollection") and n}


