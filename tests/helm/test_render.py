"""The chart lints cleanly and every object it renders, with every value set, is a valid
Kubernetes 1.35 object (kubernetes-validate, strict: unknown fields are errors). The two
prometheus-operator kinds have no schema there; their shape is checked in test_monitoring.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from kubernetes_validate import SchemaNotFoundError, ValidationError, validate

from tests.helm.conftest import CHART, NAMESPACE, VALUE_SETS, run_helm, template

KUBERNETES = "1.35.0"
# the only kinds allowed to lack a schema in kubernetes-validate: CRDs of the prometheus-operator
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(helm, tmp_path, name):
    done = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                    values=VALUE_SETS[name], tmp=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid_kubernetes_1_35(render, name):
    objects = render(name).objects
    assert objects
    problems = []
    for obj in objects:
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            validate(obj, KUBERNETES, strict=True)
        except ValidationError as err:
            problems.append(f"{what}: {'.'.join(map(str, err.path))}: {err.message}")
        except SchemaNotFoundError:
            if (obj["apiVersion"], obj["kind"]) not in OPERATOR_KINDS:
                problems.append(f"{what}: no schema for {obj['apiVersion']} {obj['kind']}")
    assert not problems, "\n".join(problems)


def test_the_kubernetes_validate_command_passes_everything_but_the_operator_kinds(helm, tmp_path):
    """The check as CI documentation gives it (`kubernetes-validate --strict -k 1.35.0 FILE`), on
    the render with every object: only the two CRD kinds may warn, and nothing may fail."""
    done = template(helm, VALUE_SETS["monitoring-on"], tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(done.stdout)
    checked = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES, str(manifest)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    warnings = [line for line in lines if line.startswith("WARN")]
    assert len(warnings) == 3, warnings  # two ServiceMonitors and the PrometheusRule
    assert all("ServiceMonitor" in w or "PrometheusRule" in w for w in warnings), warnings
    assert all(line.startswith(("INFO", "WARN")) for line in lines), checked.stdout


def test_every_namespaced_object_lands_in_the_release_namespace(render):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                      "ValidatingAdmissionPolicyBinding"}
    for name in VALUE_SETS:
        for obj in render(name).objects:
            ns = obj["metadata"].get("namespace")
            if obj["kind"] in cluster_scoped:
                assert ns is None, obj["metadata"]
            elif obj["metadata"]["name"].endswith("-dashboard") and name == "monitoring-on":
                assert ns == "monitoring"  # metrics.dashboard.namespace: where Grafana's sidecar looks
            else:
                assert ns == NAMESPACE, f"{name}: {obj['kind']}/{obj['metadata']['name']} in {ns}"


def test_default_values_render_the_expected_objects(render):
    assert render("default").kinds() == sorted([
        "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "ConfigMap", "DaemonSet",
        "Deployment", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding",
        "Service", "Service", "ServiceAccount", "ServiceAccount",
        *["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 4])


def test_monitoring_toggles_add_exactly_their_objects(render):
    on = render("monitoring-on").kinds()
    default = render("default").kinds()
    added = list(on)
    for kind in default:
        added.remove(kind)
    assert sorted(added) == ["ConfigMap", "PrometheusRule", "ServiceMonitor", "ServiceMonitor"]
    off = render("monitoring-off").kinds()
    assert "NetworkPolicy" not in off and "PodDisruptionBudget" not in off and "ServiceMonitor" not in off


def test_agent_off_renders_nothing_of_the_agent(render):
    objects = render("agent-off").objects
    assert not [o for o in objects if o["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"]
    assert "DaemonSet" not in render("agent-off").kinds()


def test_every_object_carries_the_standard_labels(render):
    for name in VALUE_SETS:
        r = render(name)
        for obj in r.objects:
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "gpu-scheduler"
            assert labels["app.kubernetes.io/instance"] == "gs"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/component"] in ("controller", "agent")
            assert labels["helm.sh/chart"].startswith("gpu-scheduler-")
            assert labels["app.kubernetes.io/version"]


def test_rbac_create_false_renders_no_rbac(helm, tmp_path):
    done = template(helm, {"rbac": {"create": False}}, tmp_path)
    assert done.returncode == 0, done.stderr
    kinds = {o["kind"] for o in yaml.safe_load_all(done.stdout) if o}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
