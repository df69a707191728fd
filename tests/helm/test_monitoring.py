"""The monitoring objects: ServiceMonitors that find the metrics Services, a PrometheusRule that
carries files/alerts.yaml unchanged (and that promtool accepts), and the Grafana dashboard
ConfigMap. kubernetes-validate has no schema for the prometheus-operator kinds, so their shape
is checked here field by field."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.helm.conftest import CHART, NAMESPACE, template

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"

# the fields this chart may use (a subset of the monitoring.coreos.com/v1 CRDs)
SERVICE_MONITOR_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
RULE_GROUP = {"name", "interval", "rules", "limit", "labels", "query_offset"}
RULE = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
METADATA = {"name", "namespace", "labels", "annotations"}


def test_service_monitors_select_the_metrics_services(render):
    r = render("monitoring-on")
    monitors = r.all("ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == ["gs-gpu-scheduler", "gs-gpu-scheduler-agent"]
    for sm in monitors:
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(sm["metadata"]) <= METADATA
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = sm["spec"]
        assert set(spec) <= SERVICE_MONITOR_SPEC
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        wanted = spec["selector"]["matchLabels"]
        services = [s for s in r.all("Service") if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1, f"{sm['metadata']['name']} selects {len(services)} Services"
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= ENDPOINT
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
            assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")


def test_service_monitor_follows_agent_toggle_and_intervals(render):
    monitors = render("customised").all("ServiceMonitor")
    assert [e["interval"] for m in monitors for e in m["spec"]["endpoints"]] == ["1m", "1m"]
    assert render("agent-off").all("ServiceMonitor") == []


def test_prometheus_rule_carries_the_alerts_file_unchanged(render):
    rule = render("monitoring-on").one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["metadata"]) <= METADATA
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= RULE_GROUP and group["name"] and group["rules"]
        for r in group["rules"]:
            assert set(r) <= RULE and ("alert" in r) != ("record" in r), r
            assert isinstance(r["expr"], str) and r["expr"].strip()


def test_promtool_accepts_the_rendered_rules(render, promtool, tmp_path):
    rule = render("monitoring-on").one("PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, allow_unicode=True))
    done = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_configmap_is_found_by_the_grafana_sidecar(render):
    cm = render("monitoring-on").one("ConfigMap", "gs-gpu-scheduler-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "GPU"}
    (key,) = cm["data"]
    assert key.endswith(".json")
    assert json.loads(cm["data"][key]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.mark.parametrize("toggle, missing", [("prometheusRule", "alerts.yaml"), ("dashboard", "dashboard.json")])
def test_a_missing_monitoring_file_fails_the_render_clearly(helm, tmp_path, toggle, missing):
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    (copy / "files" / missing).unlink()
    done = template(helm, {"metrics": {toggle: {"enabled": True}}}, tmp_path, chart=copy)
    assert done.returncode != 0
    assert f"files/{missing}" in done.stderr
