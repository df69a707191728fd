"""docs/metrics.md against the code: the controller's registry, fed real plans, exports exactly the
documented metrics, with the documented types and labels; every documented example is PromQL that
Prometheus parses and that reads the metric it illustrates."""

from __future__ import annotations

import io
import subprocess
from dataclasses import replace

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from scheduler.cluster import GpuPod, decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.daemon.metrics import Metrics
from scheduler.planner import plan
from scheduler.planner.model import MissingNamespace
from scheduler.planner.simulate import settle
from scheduler.policy import load_policy
from scheduler.telemetry.agent import Agent, AgentConfig, PrintPublisher
from scheduler.telemetry.fake_nvml import FakeNvml
from scheduler.telemetry.metrics import AgentMetrics
from scheduler.telemetry.nvml import NvmlReader

from tests.builders import t
from tests.monitoring.files import REPO
from tests.monitoring.metrics_doc import METRICS_MD, documented_metrics
from tests.monitoring.promql import metric_names
from tests.keys import KEYS
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster

HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exported_families(metrics: Metrics) -> dict[str, tuple[str, frozenset[str]]]:
    """Name as queried in PromQL -> (type, label names), from the registry's own collect(). A
    labelled counter or gauge with no child yet has no sample to show its labels: those come from
    the metric object's declared label names."""
    declared: dict[str, set[str]] = {}
    for attr in vars(metrics).values():
        if isinstance(attr, MetricWrapperBase):
            for family in attr.describe():
                declared.setdefault(family.name, set()).update(attr._labelnames)
    out = {}
    for family in metrics.registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = set(declared.get(family.name, ()))
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        out[name] = (family.type, frozenset(labels))
    return out


@pytest.fixture(scope="module")
def controller_metrics() -> Metrics:
    """A registry fed as the daemon feeds it: the real programme as its leases end, the moment the
    leased nodes drain and LG and Upstage fall short of H100 (so every plan gauge has series), with
    one namespace missing."""
    policy = one_cluster_policy()
    snapshot = decode_snapshot(dumps(builtin_cluster(policy)), KEYS)
    before, held = settle(policy, snapshot, t("2026-06-30 21:00"), KEYS)
    intruder = GpuPod("default", "intruder", before.consortium("lg").nodes[0], 8)  # tolerates lg's taint
    held = held.replace(pods=(*held.pods, intruder))
    round_1 = plan(policy, held, t("2026-06-30 22:00:01"), KEYS)
    assert round_1.foreign_pods, "the fixture needs a foreign pod"
    assert any(c.draining_nodes for c in round_1.consortia), "the fixture needs drains in progress"
    assert any(c.short for c in round_1.consortia), "the fixture needs a team short of its quota"
    assert round_1.clusters and all(p.cluster for p in round_1.pools), "the fixture needs the plan's clusters"
    assert any(c.clusters for c in round_1.consortia), "the fixture needs GPUs held per cluster"
    # a missing namespace is possible only in a programme of several clusters, which the real one
    # is not: one by hand (tests/monitoring/test_cluster_metrics.py plans one for real)
    lg_ns = policy.consortium("lg").namespaces[0]
    round_1 = replace(round_1, missing_namespaces=[MissingNamespace("default", "lg", lg_ns, 512)])
    metrics = Metrics()
    metrics.observe_plan(round_1)
    metrics.set_policy(policy.sha256, True)
    metrics.reconcile_total.labels("success").inc()
    metrics.reconcile_duration.observe(1.5)
    return metrics


@pytest.fixture(scope="module")
def agent_metrics() -> AgentMetrics:
    """The agent's registry after one tick on an 8 x H200 node whose GPU 3 raised XID 79 (the fake
    NVML fixture of tests/telemetry), as `gpu-scheduler agent` feeds it."""
    metrics = AgentMetrics("dgx-0001")
    reader = NvmlReader(FakeNvml.from_file(REPO / "tests" / "telemetry" / "fixtures" / "dgx-h200-xid79.json"))
    agent = Agent(reader, PrintPublisher(io.StringIO()), AgentConfig("dgx-0001"), on_reading=metrics.observe)
    agent.tick()
    reader.close()
    metrics.writes.labels("dgx-0001").inc(agent.writes)
    return metrics


@pytest.fixture
def exporter(request, controller_metrics, agent_metrics):
    return {"controller": controller_metrics, "agent": agent_metrics}[request.param]


SECTIONS = pytest.mark.parametrize(("exporter", "section", "prefix"),
                                   [("controller", "controller", "gpu_scheduler_"), ("agent", "agent", "gpu_agent_")],
                                   indirect=["exporter"], ids=["controller", "agent"])


@SECTIONS
def test_the_code_exports_exactly_the_documented_metrics(exporter, section, prefix):
    exported = {n for n in exported_families(exporter) if n.startswith(prefix)}
    documented = set(documented_metrics(section))
    assert exported - documented == set(), f"exported but not in {METRICS_MD.name}"
    assert documented - exported == set(), f"in {METRICS_MD.name} but not exported"
    outside = {n for n in exported_families(exporter) if not n.startswith(prefix)}
    # besides its own, each exporter carries exactly the usual process and Python runtime metrics
    assert outside and all(n.startswith(("process_", "python_")) for n in outside), outside
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_start_time_seconds"} <= outside \
        or {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds"} <= outside


@SECTIONS
def test_documented_types_and_labels_are_the_exported_ones(exporter, section, prefix):
    exported = exported_families(exporter)
    wrong = {}
    for name, doc in documented_metrics(section).items():
        if name not in exported:
            continue  # reported by the test above
        kind, labels = exported[name]
        if (doc.type, doc.labels) != (kind, labels):
            wrong[name] = {"documented": (doc.type, sorted(doc.labels)), "exported": (kind, sorted(labels))}
    assert wrong == {}


def test_every_documented_metric_follows_the_naming_rules():
    for section, prefix in (("controller", "gpu_scheduler_"), ("agent", "gpu_agent_")):
        for name, doc in documented_metrics(section).items():
            where = f"{METRICS_MD.name}:{doc.line}: {name}"
            assert name.startswith(prefix), where
            assert doc.type in ("gauge", "counter", "histogram"), where
            assert (doc.type == "counter") == name.endswith("_total"), f"{where}: counters, and only counters, end in _total"
            assert doc.meaning, where


def test_agent_metrics_are_per_gpu_or_per_node():
    per_gpu = {"gpu", "uuid", "model", "node"}
    for name, doc in documented_metrics("agent").items():
        assert per_gpu <= doc.labels or (doc.labels & per_gpu) == {"node"}, name


def test_the_agent_exposition_passes_promtool_check_metrics(agent_metrics, promtool):
    """The controller's is checked end to end in test_prometheus_scrape.py."""
    text = generate_latest(agent_metrics.registry).decode()
    assert 'gpu_agent_last_xid{gpu="3"' in text
    done = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_every_example_reads_its_metric():
    for section in ("controller", "agent"):
        for name, doc in documented_metrics(section).items():
            read = metric_names(doc.example)
            wanted = {name + s for s in HISTOGRAM_SERIES} if doc.type == "histogram" else {name}
            assert read & wanted, f"{METRICS_MD.name}:{doc.line}: the example of {name} reads {sorted(read)}"


def test_every_example_is_valid_promql(promtool, tmp_path):
    """promtool parses each example as the expression of a recording rule."""
    examples = [doc for section in ("controller", "agent") for doc in documented_metrics(section).values()]
    rules = {"groups": [{"name": "docs-metrics-examples", "rules": [
        {"record": f"docs:example_line_{doc.line}", "expr": doc.example} for doc in examples]}]}
    path = tmp_path / "examples.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(examples)} rules found" in done.stdout + done.stderr
