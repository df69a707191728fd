"""The alert rules (deploy/helm/gpu-scheduler/files/alerts.yaml): promtool accepts them, their unit
tests pass and cover every alert both ways, they read only metrics the project exports, and each
one carries a severity, a summary, a description and a runbook that exists in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.files import ALERTS, OPERATIONS_MD, REPO, alert_rules, github_anchors
from tests.monitoring.metrics_doc import METRICS_MD, documented_metrics
from tests.monitoring.promql import metric_names

UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
RUNBOOK_BASE = "https://github.com/sovereign-ai/gpu-scheduler/blob/main/docs/operations.md#"
SEVERITIES = {"critical", "warning", "info"}


def test_promtool_accepts_the_rules_file(promtool):
    done = subprocess.run([str(promtool), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool):
    done = subprocess.run([str(promtool), "test", "rules", UNIT_TESTS.name], cwd=UNIT_TESTS.parent,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    assert tests["rule_files"] == [str(Path("..", "..", ALERTS.relative_to(REPO)))]
    fires, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never seen firing in alerts_test.yaml"
    assert names - silent == set(), "alerts never checked to stay silent in alerts_test.yaml"
    assert (fires | silent) - names == set(), "unit tests of alerts that do not exist"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_is_labelled_and_explained(rule):
    assert re.fullmatch(r"GpuScheduler[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_every_runbook_anchor_exists_in_operations_md():
    anchors = github_anchors(OPERATIONS_MD.read_text(encoding="utf-8"))
    missing = [r["annotations"]["runbook_url"] for r in alert_rules()
               if r["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE) not in anchors]
    assert missing == []


def test_alerts_read_only_metrics_the_project_exports():
    known = set(documented_metrics("controller")) | set(documented_metrics("agent"))
    known |= {f"gpu_scheduler_reconcile_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")}
    unknown = {r["alert"]: sorted(metric_names(r["expr"]) - known) for r in alert_rules()}
    assert {a: m for a, m in unknown.items() if m} == {}
    assert all(metric_names(r["expr"]) for r in alert_rules())


def test_the_alert_table_of_metrics_md_matches_the_rules():
    text = METRICS_MD.read_text(encoding="utf-8")
    section = text[text.index("\n## Alerts"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| \[`(\w+)`\]\(operations\.md#(\w+)\) \| (\w+) \|", section, re.M)
    assert rows == [(r["alert"], r["alert"].lower(), r["labels"]["severity"]) for r in alert_rules()]
