"""The Grafana dashboard (deploy/helm/gpu-scheduler/files/dashboard.json): Grafana's own schema (the
grafana-foundation-sdk models) knows every key and enum value in it, its queries read only metrics
the project exports, and every variable they use is defined."""

from __future__ import annotations

import enum
import json
import re
import typing

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from scheduler.daemon.metrics import Metrics
from scheduler.telemetry.metrics import AgentMetrics
from tests.monitoring.files import dashboard, panels
from tests.monitoring.promql import metric_names, variables

# Grafana's global variables (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables)
GRAFANA_BUILTINS = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
                    "__from", "__to", "__dashboard", "__name", "__org", "__user", "__timeFilter"}


@pytest.fixture(scope="module")
def source() -> dict:
    return dashboard()


@pytest.fixture(scope="module")
def model(source) -> Dashboard:
    plugins.register_default_plugins()  # panel options and Prometheus queries as typed models
    return Dashboard.from_json(source)


def queries(source: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [(p.get("title", ""), t["expr"]) for p in panels(source) for t in p.get("targets", [])]


def dropped_keys(original, round_trip, path="") -> list[str]:
    """Paths of `original` that the SDK's round trip lost or changed. The SDK adds defaults
    (`transparent: false`, `repeatDirection: "h"`, ...), so only what the source says is compared."""
    if isinstance(original, dict):
        if not isinstance(round_trip, dict):
            return [f"{path}: became {type(round_trip).__name__}"]
        out = []
        for key, value in original.items():
            if key not in round_trip:
                out.append(f"{path}/{key}: unknown to Grafana's schema (misspelt, or from a newer Grafana)")
            else:
                out += dropped_keys(value, round_trip[key], f"{path}/{key}")
        return out
    if isinstance(original, list):
        if not isinstance(round_trip, list) or len(original) != len(round_trip):
            return [f"{path}: list changed"]
        return [d for i, (a, b) in enumerate(zip(original, round_trip)) for d in dropped_keys(a, b, f"{path}[{i}]")]
    return [] if original == round_trip else [f"{path}: {original!r} became {round_trip!r}"]


def bad_enum_values(obj, path="") -> list[str]:
    """Values of the SDK's models that are not members of the field's enum or Literal type (the
    models accept any string; Grafana would ignore a misspelt `"stacking": {"mode": "norml"}`)."""
    out: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            out += bad_enum_values(item, f"{path}[{i}]")
        return out
    if isinstance(obj, dict):
        for key, item in obj.items():
            out += bad_enum_values(item, f"{path}/{key}")
        return out
    if not type(obj).__module__.startswith("grafana_foundation_sdk.models"):
        return out
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # noqa: BLE001 - a model whose hints do not resolve: check its fields still
        hints = {}
    for field, value in vars(obj).items():
        allowed = _allowed_values(hints.get(field))
        if allowed is not None and value is not None and value not in allowed:
            out.append(f"{path}/{field}: {value!r} is not one of {sorted(map(str, allowed))}")
        out += bad_enum_values(value, f"{path}/{field}")
    return out


def _allowed_values(hint) -> set | None:
    if hint is None:
        return None
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        found = [a for a in (_allowed_values(a) for a in args if a is not type(None)) if a is not None]
        return set().union(*found) if found and len(found) == len([a for a in args if a is not type(None)]) else None
    if typing.get_origin(hint) is typing.Literal:
        return set(args)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {m.value for m in hint}
    return None


def exported_metric_names() -> set[str]:
    """What the controller's and the agent's real registries export, histograms as their series
    (docs/metrics.md lists the same: tests/monitoring/test_metrics_doc.py)."""
    names = set()
    for registry in (Metrics().registry, AgentMetrics("node").registry):
        for family in registry.collect():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    return names


def test_the_sdk_loads_the_dashboard_without_losing_a_key(source, model):
    round_trip = json.loads(json.dumps(model, cls=JSONEncoder))
    assert dropped_keys(source, round_trip) == []


def test_enum_fields_hold_values_grafana_knows(model):
    assert bad_enum_values(model) == []


def test_every_panel_type_is_a_grafana_panel(source, model):
    known = set(cogruntime.Runtime().panelcfg_variants) | {"row"}
    assert {p["type"] for p in panels(source)} - known == set()


def test_identity_and_schema_version(source, model):
    assert (source["uid"], source["title"]) == ("gpu-scheduler", "gpu-scheduler")
    assert source["schemaVersion"] >= Dashboard().schema_version  # at least what the SDK writes


def test_panel_ids_are_unique_and_panels_fit_the_grid(source):
    ids = [p["id"] for p in panels(source)]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in source["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_every_query_reads_only_exported_metrics(source):
    known = exported_metric_names()
    unknown = {f"{title}: {expr}": sorted(metric_names(expr) - known) for title, expr in queries(source)}
    assert {q: m for q, m in unknown.items() if m} == {}
    assert all(metric_names(expr) for _, expr in queries(source)), "a query that reads no metric"


def test_every_variable_a_query_uses_is_defined(source):
    defined = {v["name"] for v in source["templating"]["list"]}
    texts = [expr for _, expr in queries(source)]
    texts += [json.dumps(p.get("datasource", {})) + p.get("title", "") for p in panels(source)]
    texts += [v["query"] if isinstance(v.get("query"), str) else json.dumps(v.get("query"))
              for v in source["templating"]["list"]]
    used = set().union(*(variables(text) for text in texts))
    assert used - defined - GRAFANA_BUILTINS == set()


def test_variables_datasource_consortium_cluster_and_pool(source):
    by_name = {v["name"]: v for v in source["templating"]["list"]}
    assert [v["name"] for v in source["templating"]["list"]] == ["datasource", "consortium", "cluster", "pool"]
    assert by_name["datasource"]["type"] == "datasource"
    assert by_name["datasource"]["query"] == "prometheus"
    # the pools offered are those of the selected clusters
    for name, selector in (("consortium", "gpu_scheduler_consortium_status"), ("cluster", "gpu_scheduler_cluster_up"),
                           ("pool", 'gpu_scheduler_pool_capacity_gpus{cluster=~"$cluster"}')):
        var = by_name[name]
        assert var["type"] == "query"
        assert var["query"] == f"label_values({selector}, {name})"
        assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert var["multi"] is True and var["includeAll"] is True, name
    # "All" is a regex that also matches series without the label (a daemon from before clusters
    # exports pools without one), not the list of the values found
    assert by_name["cluster"]["allValue"] == ".*"
    read = metric_names("gpu_scheduler_consortium_status + gpu_scheduler_pool_capacity_gpus + gpu_scheduler_cluster_up")
    assert read <= exported_metric_names()


def test_pool_and_cluster_panels_follow_the_cluster_variable(source):
    """Every query on a metric with a `cluster` label selects `cluster=~"$cluster"`."""
    with_cluster = {"gpu_scheduler_pool_capacity_gpus", "gpu_scheduler_pool_healthy_gpus",
                    "gpu_scheduler_pool_free_gpus", "gpu_scheduler_cluster_up",
                    "gpu_scheduler_cluster_allocated_gpus", "gpu_scheduler_namespace_missing"}
    checked = 0
    for title, expr in queries(source):
        for name in metric_names(expr) & with_cluster:
            checked += 1
            selectors = re.findall(rf"\b{name}\{{([^}}]*)\}}", expr)
            assert selectors and all('cluster=~"$cluster"' in s for s in selectors) \
                and len(selectors) == len(re.findall(rf"\b{name}\b", expr)), f"{title}: {expr}"
    assert checked >= 6


def test_the_clusters_row(source):
    rows = [p["title"] for p in source["panels"] if p["type"] == "row"]
    assert rows.index("Clusters") == rows.index("Pools") - 1
    by_title = {p["title"]: p for p in panels(source)}
    up = by_title["Clusters up"]
    assert up["type"] == "stat"
    assert [t["expr"] for t in up["targets"]] == ['min by (cluster) (gpu_scheduler_cluster_up{cluster=~"$cluster"})']
    texts = {v["text"] for m in up["fieldConfig"]["defaults"]["mappings"] for v in m["options"].values()}
    assert texts == {"up", "down"}
    read = set().union(*(metric_names(t["expr"]) for t in by_title["GPUs per cluster and consortium"]["targets"]))
    assert read == {"gpu_scheduler_cluster_allocated_gpus"}


def test_every_panel_and_query_uses_the_datasource_variable(source):
    for p in panels(source):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for target in p["targets"]:
            assert target["datasource"] == p["datasource"], p["title"]


def test_the_dashboard_shows_what_operators_need(source):
    """One query at least on each thing the dashboard is for (issue 5)."""
    read = set().union(*(metric_names(expr) for _, expr in queries(source)))
    for metric in ("quota_gpus", "target_gpus", "allocated_gpus", "used_gpus", "pool_capacity_gpus",
                   "pool_healthy_gpus", "pool_free_gpus", "consortium_status", "stage_info", "decision_pending",
                   "draining_nodes", "drain_deadline_timestamp_seconds", "next_change_timestamp_seconds",
                   "reconcile_duration_seconds_bucket", "reconcile_total", "telemetry_stale_nodes",
                   "api_writes_total", "leader", "policy_valid", "cluster_up", "cluster_allocated_gpus",
                   "namespace_missing"):
        assert f"gpu_scheduler_{metric}" in read, metric
    assert any("histogram_quantile" in expr for _, expr in queries(source))
