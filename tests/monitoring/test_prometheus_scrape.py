"""End to end with the real programs: `gpu-scheduler run --simulate` serves /metrics, promtool finds
nothing to complain about in it, and a real Prometheus server scrapes it, holds the quotas the
planner computes, and loads every alert of alerts.yaml healthy and quiet."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.monitoring.files import ALERTS, REPO, alert_rules, dashboard, panels
from tests.monitoring.metrics_doc import documented_metrics

GPU_SCHEDULER = Path(sys.executable).with_name("gpu-scheduler")
START = "2026-03-01T00:00:00+09:00"
MODULE_BUDGET_S = 50  # all the waits of this module together; they take about 10 s here
_budget_end: list[float] = []


@dataclass
class Process:
    """A child process whose output is drained by a thread (so it never blocks on a full pipe)."""

    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], **kw) -> "Process":
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        me = cls(proc)
        threading.Thread(target=me._drain, daemon=True).start()
        return me

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines[-60:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def wait_for(what: str, check: Callable[[], object], *, procs: tuple[Process, ...]):
    """Poll `check` until it returns something truthy; fail with the processes' output when the
    module's time budget runs out first."""
    if not _budget_end:
        _budget_end.append(time.monotonic() + MODULE_BUDGET_S)
    deadline = _budget_end[0]
    last_error = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.proc.poll() is not None:
                pytest.fail(f"{p.proc.args[0]} exited {p.proc.returncode} while waiting for {what}:\n{p.output()}")
        try:
            result = check()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(0.2)
    logs = "\n".join(p.output() for p in procs)
    pytest.fail(f"out of the module's {MODULE_BUDGET_S} s waiting for {what} (last error: {last_error!r}):\n{logs}")


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Daemon:
    process: Process
    base: str


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[Daemon]:
    """`gpu-scheduler run --simulate` on the built-in cluster, ready (policy loaded, cluster read)."""
    work = tmp_path_factory.mktemp("daemon")
    proc = Process.start([str(GPU_SCHEDULER), "run", "--policy", str(REPO / "policies"), "--simulate",
                          "--start", START, "--time-scale", "1", "--reconcile-every", "5", "--metrics-port", "0"],
                         cwd=work)
    try:
        def port():
            found = re.search(r"metrics on :(\d+)/metrics", "".join(proc.lines))
            return found and int(found.group(1))
        base = f"http://127.0.0.1:{wait_for('the daemon to print its metrics port', port, procs=(proc,))}"
        wait_for("/readyz", lambda: http_get(base + "/readyz")[0] == 200, procs=(proc,))
        yield Daemon(proc, base)
    finally:
        proc.stop()


@dataclass
class Prometheus:
    process: Process
    base: str
    daemon: Daemon

    def query(self, promql: str) -> list[dict]:
        status, body = http_get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", body
        return answer["data"]["result"]

    def rules(self) -> list[dict]:
        status, body = http_get(self.base + "/api/v1/rules")
        assert status == 200, body
        return [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def prometheus(prometheus_server_binary, daemon, tmp_path_factory) -> Iterator[Prometheus]:
    """The real Prometheus server, scraping the daemon every second, with alerts.yaml loaded."""
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "gpu-scheduler",
                            "static_configs": [{"targets": [daemon.base.removeprefix("http://")]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    listen = f"127.0.0.1:{free_port()}"
    proc = Process.start([str(prometheus_server_binary), f"--config.file={work / 'prometheus.yml'}",
                          f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address={listen}"], cwd=work)
    try:
        base = f"http://{listen}"
        wait_for("Prometheus to be ready", lambda: http_get(base + "/-/ready")[0] == 200, procs=(proc, daemon.process))
        yield Prometheus(proc, base, daemon)
    finally:
        proc.stop()


def planned_quotas() -> dict[str, dict[str, int]]:
    """What `gpu-scheduler plan` says each consortium's quota is at the daemon's start instant."""
    done = subprocess.run([str(GPU_SCHEDULER), "plan", "--policy", str(REPO / "policies"), "--at", START, "-o", "json"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return {c["name"]: c["quota"] for c in json.loads(done.stdout)["consortia"]}


def test_the_exposition_passes_promtool_check_metrics(daemon, promtool):
    status, text = http_get(daemon.base + "/metrics")
    assert status == 200
    assert "gpu_scheduler_quota_gpus{" in text  # the plan gauges are there, not just the counters
    done = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_prometheus_holds_the_quotas_the_planner_computes(prometheus):
    quotas = planned_quotas()
    assert sum(sum(q.values()) for q in quotas.values()) > 0
    wait_for("the first scrape of the plan gauges",
             lambda: prometheus.query('gpu_scheduler_quota_gpus{consortium="lg"}'),
             procs=(prometheus.process, prometheus.daemon.process))
    for consortium, quota in quotas.items():
        series = prometheus.query(f'gpu_scheduler_quota_gpus{{consortium="{consortium}"}}')
        scraped = {s["metric"]["gpu_model"]: float(s["value"][1]) for s in series}
        for s in series:
            assert s["metric"]["job"] == "gpu-scheduler" and s["metric"]["stage"] == "stage-2"
        assert {m: scraped.get(m) for m in quota} == {m: float(n) for m, n in quota.items()}, consortium
        assert sum(scraped.values()) == sum(quota.values()), consortium
        total = prometheus.query(f'sum(gpu_scheduler_quota_gpus{{consortium="{consortium}"}})')
        assert [float(s["value"][1]) for s in total] == ([float(sum(quota.values()))] if series else []), consortium


def test_prometheus_loads_every_alert_healthy_and_a_healthy_daemon_raises_none(prometheus):
    alerts = {rule["alert"] for rule in alert_rules()}
    # Until its first reconcile is done a replica exports last_successful_reconcile... = 0, which
    # sets GpuSchedulerNoSuccessfulReconcile pending (it fires only 5 minutes later): start from a
    # scrape taken after that first reconcile.
    settled = "gpu_scheduler_leader == 1 and on () (gpu_scheduler_last_successful_reconcile_timestamp_seconds > 0)"
    wait_for("a scrape after the leader's first reconcile", lambda: prometheus.query(settled),
             procs=(prometheus.process, prometheus.daemon.process))
    scraped_at = time.time()

    def evaluated_since_scrape():
        rules = prometheus.rules()
        ok = rules and all(r["health"] == "ok" and _evaluated_after(r, scraped_at + 1) for r in rules)
        return ok and rules
    rules = wait_for("every rule evaluated after the first scrape", evaluated_since_scrape,
                     procs=(prometheus.process, prometheus.daemon.process))
    assert {r["name"] for r in rules} == alerts
    assert all(r["type"] == "alerting" and r["health"] == "ok" and not r.get("lastError") for r in rules)
    active = {r["name"]: [a["labels"] for a in r["alerts"]] for r in rules if r["state"] != "inactive"}
    assert active == {}, "a daemon running normally sets off no alert"


def _evaluated_after(rule: dict, when: float) -> bool:
    stamp = rule.get("lastEvaluation", "")
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if not match:
        return False
    whole = datetime.fromisoformat(match.group(1) + (match.group(3).replace("Z", "+00:00")))
    return whole.timestamp() + float(match.group(2) or 0) > when


def grafana_expr(expr: str) -> str:
    """A dashboard query as Grafana sends it with every consortium, cluster and pool selected."""
    for name, value in (("consortium", ".*"), ("cluster", ".*"), ("pool", ".*"), ("__rate_interval", "1m"),
                        ("__range", "1h"), ("__interval", "15s")):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def test_every_dashboard_query_and_documented_example_runs_on_the_scraped_data(prometheus):
    """Prometheus executes them (no parse or vector-matching error), and the panels that show the
    plan have data."""
    wait_for("the first scrape of the plan gauges", lambda: prometheus.query("gpu_scheduler_stage_info"),
             procs=(prometheus.process, prometheus.daemon.process))
    results = {}
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            results[(panel["title"], target["refId"])] = prometheus.query(grafana_expr(target["expr"]))
    for section in ("controller", "agent"):
        for doc in documented_metrics(section).values():
            prometheus.query(doc.example)
    must_show = ["Stage in force", "Round decision", "Next change point", "Consortium status",
                 "Allocated and target GPUs per consortium", "$consortium: quota, target, allocated and used GPUs by model",
                 "Pool GPUs: capacity, healthy, free", "Free GPUs now", "Nodes draining", "Replicas leading",
                 "Policy valid", "Policy in force", "Since last successful reconcile"]
    empty = [key for key, result in results.items() if key[0] in must_show and not result]
    assert empty == []
    status = {s["metric"]["consortium"]: float(s["value"][1]) for s in results[("Consortium status", "A")]}
    assert status == {"lg": 1, "upstage": 1, "motif": 1, "skt": 2, "naver": 5, "ncai": 5}  # as on 2026-03-01
