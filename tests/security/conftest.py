"""A small programme on the sandbox API, reconciled to its steady state, and a handle that lets a
test play the person who edits something by hand and then the daemon's next reconcile.

Two consortia share an H100 and a B200 pool with free nodes left over; the daemon runs as a real
`Reconciler` over HTTP with the official client, on a programme clock the test moves by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from scheduler.actuator.writer import Writer
from scheduler.actuator.connect import connect
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.daemon.clock import Clock
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Outcome, Reconciler
from scheduler.daemon.metrics import Metrics
from scheduler.sandbox import SandboxServer
from tests.builders import t
from tests.keys import KEYS
from scheduler.actuator.watch import ClusterReader

PREFIX = "gpu-scheduler.sovereign-ai.kr/"
MARCH_2026 = t("2026-03-01 00:00")

PROGRAM = """\
apiVersion: gpu-scheduler.sovereign-ai.kr/v1
kind: Program
metadata: {name: security-review}
spec:
  timezone: Asia/Seoul
  gpuModels: {H100: {units: 1}, B200: {units: 2}}
  pools:
    - name: h100
      gpuModel: H100
      nodeSelector: {gpu-scheduler.sovereign-ai.kr/pool: h100}
      topologyKey: nvidia.com/gpu.clique
      size: {nodes: 8, gpusPerNode: 8}
    - name: b200
      gpuModel: B200
      nodeSelector: {gpu-scheduler.sovereign-ai.kr/pool: b200}
      topologyKey: nvidia.com/gpu.clique
      size: {nodes: 4, gpusPerNode: 8}
  consortia:
    - {name: lg, namespaces: [lg-exaone]}
    - {name: upstage, namespaces: [upstage-solar]}
  windDown: {gracePeriod: 14d, mode: step, keepPercent: 25, drainTimeout: 2h}
"""

STAGES = """\
apiVersion: gpu-scheduler.sovereign-ai.kr/v1
kind: Stage
metadata: {name: stage-1}
spec:
  start: 2026-01-01
  eligible: [lg, upstage]
  quotas:
    lg: {H100: 24, B200: 16}
    upstage: {H100: 24}
"""


class Wall:
    """The wall clock the programme clock runs on; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """The sandbox, the daemon's reconciler, and what a reviewer looks at after an edit."""

    def __init__(self, server: SandboxServer, api: client.ApiClient, kubeconfig: Path, source: PolicySource):
        self.server = server
        self.api = api
        self.kubeconfig = kubeconfig
        self.core = client.CoreV1Api(api)
        self.wall = Wall()
        self.clock = Clock(start=MARCH_2026, wall=self.wall)
        self.metrics = Metrics()
        self.reconciler = Reconciler(source, ClusterReader(api, KEYS), self.clock, self.metrics, Writer(api, sleep=lambda s: None))
        self._old_events: set[tuple[str, str]] = set()

    # -- the daemon ---------------------------------------------------------------------------------
    def reconcile(self) -> Outcome:
        outcome = self.reconciler.reconcile()
        assert outcome.failed == 0
        return outcome

    def advance(self, **delta: float) -> None:
        self.wall.now += timedelta(**delta).total_seconds()

    def drift(self, kind: str) -> float:
        return self.metrics.drift_reverted_total.labels(kind)._value.get()

    # -- what is in the cluster ---------------------------------------------------------------------
    def node(self, name: str) -> dict[str, Any]:
        return self.server.get("nodes", name)

    def node_label(self, name: str, key: str) -> str | None:
        return self.node(name)["metadata"].get("labels", {}).get(PREFIX + key)

    def node_annotation(self, name: str, key: str) -> str | None:
        return self.node(name)["metadata"].get("annotations", {}).get(PREFIX + key)

    def our_taints(self, name: str) -> set[tuple[str, str, str]]:
        return {(t_["key"], t_.get("value", ""), t_["effect"]) for t_ in self.node(name)["spec"].get("taints", [])
                if t_["key"].startswith(PREFIX)}

    def nodes_of(self, consortium: str, pool: str = "h100") -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.server.list("nodes")
                      if n["metadata"]["labels"].get(PREFIX + "consortium") == consortium
                      and n["metadata"]["labels"].get(PREFIX + "pool") == pool)

    def namespace(self, ns: str) -> dict[str, Any]:
        return self.server.get("namespaces", ns)

    def ns_labels(self, ns: str) -> dict[str, str]:
        return {k[len(PREFIX):]: v for k, v in self.namespace(ns)["metadata"].get("labels", {}).items()
                if k.startswith(PREFIX)}

    def ns_annotation(self, ns: str, key: str) -> str | None:
        return self.namespace(ns)["metadata"].get("annotations", {}).get(PREFIX + key)

    def quota(self, ns: str) -> dict[str, Any]:
        return self.server.get("resourcequotas", "gpu-scheduler", ns)

    def quota_hard(self, ns: str) -> str:
        return self.quota(ns)["spec"]["hard"]["requests.nvidia.com/gpu"]

    def settled(self) -> None:
        """From now on `events` shows only Events written after this call."""
        self._old_events = {(e["metadata"]["namespace"], e["metadata"]["name"]) for e in self.server.list("events")}

    def events(self, ns: str, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.server.list("events", ns) if e["reason"] == reason
                and (ns, e["metadata"]["name"]) not in self._old_events]

    # -- what someone does by hand ------------------------------------------------------------------
    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        self.core.patch_node(name, body)

    def run_gpu_pod(self, ns: str, name: str, node: str, gpus: int = 8) -> None:
        self.core.create_namespaced_pod(ns, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                                                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}})

    def telemetry(self, healthy: int, total: int = 8, *, age: timedelta = timedelta(0), error: str = "") -> str:
        """A telemetry annotation as the agent writes it, dated `age` before programme time now."""
        stamp = (self.clock.now() - age).isoformat()
        gpus = [{"index": i, "uuid": f"GPU-{i:08d}", "healthy": i < healthy} for i in range(total)]
        return json.dumps({"version": 1, "timestamp": stamp, "total_gpus": total, "healthy_gpus": healthy,
                           "gpus": gpus, "error": error})


def write_programme(folder: Path) -> Path:
    """PROGRAM and STAGES as a policy folder."""
    folder.mkdir()
    (folder / "program.yaml").write_text(PROGRAM)
    (folder / "stages.yaml").write_text(STAGES)
    return folder


def loaded_programme(folder: Path) -> PolicySource:
    """The policy source of write_programme(folder), loaded (and valid)."""
    source = PolicySource(write_programme(folder))
    source.reload()
    assert source.policy is not None, source.error
    return source


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return write_programme(tmp_path / "policies")


@pytest.fixture
def cluster(policy_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    """The programme handed out and settled: a second reconcile writes nothing, no drift counted."""
    source = PolicySource(policy_dir)
    source.reload()
    assert source.policy is not None, source.error
    server = SandboxServer(port=0, seed=1).start()
    try:
        server.load_list(builtin_cluster(source.policy))
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        api = connect(str(kubeconfig))
        try:
            c = Cluster(server, api, kubeconfig, source)
            assert c.reconcile().writes > 0
            assert c.reconcile().writes == 0
            assert all(c.drift(kind) == 0 for kind in ("node", "namespace", "quota"))
            c.settled()
            yield c
        finally:
            api.close()
    finally:
        server.stop()
