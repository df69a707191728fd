"""What operators read: the chart README documents every value, and the release notes give the
kubectl commands with the label keys the scheduler really writes (scheduler/cluster/labels.py)."""

from __future__ import annotations

import pytest

from scheduler.cluster.labels import RESOURCE_QUOTA_NAME, Keys
from tests.helm.conftest import CHART, NAMESPACE, RELEASE, VALUES, chart_levels, run_helm

README = (CHART / "README.md").read_text(encoding="utf-8")


def test_readme_documents_every_value():
    found = [leaf for *_, level in chart_levels() for leaf in level]
    assert len(found) > 60
    missing = [p for p in found if f"`{p}`" not in README]
    assert not missing, f"values not documented in deploy/helm/gpu-scheduler/README.md: {missing}"


def test_readme_mentions_the_exact_toggle_names_operators_rely_on():
    for toggle in ("metrics.serviceMonitor.enabled", "metrics.prometheusRule.enabled", "metrics.dashboard.enabled",
                   "agent.enabled", "policy.existingConfigMap"):
        assert f"`{toggle}`" in README
        node = VALUES
        for part in toggle.split("."):
            node = node[part]  # and values.yaml has it, under that exact path


def notes(helm, tmp_path, values=None) -> str:
    done = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                    values=values, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("prefix", ["gpu-scheduler.sovereign-ai.kr", "sched.example.org"])
def test_notes_give_engineers_the_kubectl_lines_with_the_real_label_keys(helm, tmp_path, prefix):
    text = notes(helm, tmp_path, {"labelPrefix": prefix})
    k = Keys(prefix)
    assert (f"kubectl get ns -L {k.consortium},{k.status},{k.stage},{k.quota_gpus},{k.allocated_gpus}"
            in text)
    assert f"kubectl get nodes -L {k.consortium},{k.node_state}" in text
    assert f"kubectl describe resourcequota {RESOURCE_QUOTA_NAME} -n NAMESPACE" in text
    assert "kubectl get events -n NAMESPACE" in text


def test_notes_tell_operators_how_to_find_the_leader_and_the_metrics(helm, tmp_path):
    text = notes(helm, tmp_path)
    assert f"kubectl -n {NAMESPACE} get lease gpu-scheduler-leader" in text
    assert f"port-forward svc/{RELEASE}-gpu-scheduler 9090:9090" in text
    assert "gpu_scheduler_leader" in text and "/readyz" in text
    assert "DRY RUN" not in text
    assert "DRY RUN" in notes(helm, tmp_path, {"controller": {"dryRun": True}})
