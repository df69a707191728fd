"""The Helm chart as `helm` renders it: fixtures that render deploy/helm/gpu-scheduler with the
real helm binary (tests/realtools.py installs it when missing) and hand back the objects.

Value sets used across the chart tests live here, so every test sees the same renders (each
set is rendered once per session).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "gpu-scheduler"
RELEASE = "gs"
NAMESPACE = "gpu-scheduler-system"

VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
# definitions in values.schema.json that describe Kubernetes types: values.yaml sets only the
# fields it wants of them and the README documents each as one value
KUBERNETES_TYPES = {"resources", "podSecurityContext", "securityContext", "affinity", "labelSelector"}


def chart_levels(values: dict[str, Any] = VALUES, schema: dict[str, Any] = SCHEMA,
                 path: str = "") -> Iterator[tuple[str, dict[str, Any], dict[str, Any], list[str]]]:
    """(path, values node, schema node, leaves) for each level of the chart's own options that
    values.yaml spells out; `leaves` are the dotted paths of that level's plain values (maps,
    lists, scalars and Kubernetes types count as one value each)."""
    leaves: list[str] = []
    nested: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for key, child in values.items():
        sub = schema.get("properties", {}).get(key, {})
        ref = sub.get("$ref", "").rsplit("/", 1)[-1]
        if ref and ref not in KUBERNETES_TYPES:
            sub = SCHEMA["definitions"][ref]
        dotted = f"{path}.{key}" if path else key
        if isinstance(child, dict) and "properties" in sub and ref not in KUBERNETES_TYPES:
            nested.append((dotted, child, sub))
        else:
            leaves.append(dotted)
    yield path, values, schema, leaves
    for dotted, child, sub in nested:
        yield from chart_levels(child, sub, dotted)


# name -> values (the default set is the chart's values.yaml alone)
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "existing-configmap": {"policy": {"existingConfigMap": "fleet-policy"}},
    "monitoring-off": {
        "metrics": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False},
                    "dashboard": {"enabled": False}},
        "networkPolicy": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
    },
    "agent-off": {"agent": {"enabled": False}},
    "monitoring-on": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                    "dashboard": {"enabled": True, "namespace": "monitoring",
                                  "annotations": {"grafana_folder": "GPU"}}},
    },
    # nearly every knob turned, to catch a template path the defaults never take
    "customised": {
        "labelPrefix": "sched.example.org",
        "fullnameOverride": "fleet",
        "image": {"repository": "registry.example/gpu-scheduler", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "controller": {
            "replicas": 1, "dryRun": True, "verbose": True, "reconcileEvery": 12.5, "metricsPort": 9191,
            "extraArgs": ["--time-scale", "1"], "env": {"TZ": "Asia/Seoul"},
            "serviceAccount": {"annotations": {"example.org/role": "x"}},
            "podAnnotations": {"example.org/a": "b"}, "podLabels": {"team": "platform"},
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
            "priorityClassName": "system-cluster-critical", "terminationGracePeriodSeconds": 120,
        },
        "agent": {
            "interval": "15s", "heartbeat": "2m", "metricsPort": 9402, "runtimeClassName": "",
            "env": {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "utility,compute"},
            "nodeSelector": {"example.org/gpu": "true", "nvidia.com/gpu.present": None},  # null drops a default key
            "tolerations": [{"key": "example.org/maintenance", "operator": "Exists", "effect": "NoExecute"}],
            "extraArgs": ["--verbose"], "maxUnavailable": 5, "priorityClassName": "system-node-critical",
            "serviceAccount": {"name": "gpu-agent"}, "podLabels": {"team": "platform"},
        },
        "policy": {"files": {"program.yaml": (REPO / "policies" / "program.yaml").read_text(encoding="utf-8"),
                             "stages.yaml": (REPO / "policies" / "stages.yaml").read_text(encoding="utf-8")}},
        "metrics": {"service": {"annotations": {"prometheus.io/scrape": "true"}},
                    "serviceMonitor": {"enabled": True, "interval": "1m", "scrapeTimeout": "20s"}},
        "podDisruptionBudget": {"minAvailable": 1},
        "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "monitoring"}}}],
                          "apiServer": {"ports": [6443], "cidrs": ["10.0.0.10/32"]}},
    },
}


@dataclass
class Render:
    """One `helm template` run: its objects, with lookups by kind and name."""

    values: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, pod spec) of every Deployment and DaemonSet."""
        for o in self.objects:
            if o["kind"] in ("Deployment", "DaemonSet"):
                yield o, o["spec"]["template"]["spec"]

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for workload, spec in self.pod_specs():
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield workload, c


def run_helm(helm: Path, *args: str, values: dict[str, Any] | None = None,
             tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        cmd += ["-f", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def template(helm: Path, values: dict[str, Any], tmp: Path, *extra: str,
             chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *extra,
                    values=values, tmp=tmp)


@pytest.fixture(scope="session")
def render(helm, tmp_path_factory) -> Callable[[str], Render]:
    """render(name) -> the chart rendered with VALUE_SETS[name] (cached for the session)."""
    cache: dict[str, Render] = {}

    def _render(name: str) -> Render:
        if name not in cache:
            values = VALUE_SETS[name]
            done = template(helm, values, tmp_path_factory.mktemp(f"values-{name}"))
            assert done.returncode == 0, f"helm template with the {name!r} values failed:\n{done.stderr}"
            objects = [o for o in yaml.safe_load_all(done.stdout) if o]
            cache[name] = Render(values, objects)
        return cache[name]

    return _render
