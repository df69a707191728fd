"""`gpu-scheduler run` as real processes against one sandbox API: two replicas at once (only the
Lease holder writes), SIGTERM (the Lease is handed back, the other replica takes over at once),
and a SIGKILL in the middle of a drain (the restarted daemon resumes the same deadlines)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from scheduler.cluster.synthetic import builtin_cluster
from scheduler.policy import load_policy
from scheduler.sandbox import SandboxServer
from tests.keys import KEYS
from scheduler.actuator.watch import ClusterReader
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster

REPO = Path(__file__).resolve().parents[2]
PREFIX = "gpu-scheduler.sovereign-ai.kr/"


@pytest.fixture
def sandbox(tmp_path):
    server = SandboxServer(port=0, seed=5).start()
    server.load_list(builtin_cluster(one_cluster_policy()))
    server.load_list({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-scheduler"}}]})
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    yield server, kubeconfig
    server.stop()


class Replica:
    """One `gpu-scheduler run` process and its /metrics."""

    def __init__(self, kubeconfig: Path, start: str, log: Path):
        self.log = log
        self.out = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "run", "--policy", str(one_cluster_dir()),
             "--kubeconfig", str(kubeconfig), "--metrics-port", "0", "--reconcile-every", "1",
             "--start", start, "--time-scale", "1", "--lease-namespace", "gpu-scheduler"],
            stdout=self.out, stderr=subprocess.STDOUT, cwd=REPO)
        self.port = self._port()

    def _port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"metrics on :(\d+)/metrics", self.log.read_text())
            if found:
                return int(found.group(1))
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no metrics port in the log:\n{self.log.read_text()}")

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()


def wait_until(predicate, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def lease_holder(server) -> str:
    return server.get("leases", "gpu-scheduler-leader", "gpu-scheduler")["spec"].get("holderIdentity") or ""


def ns_label(server, ns: str, key: str) -> str | None:
    return server.get("namespaces", ns)["metadata"].get("labels", {}).get(PREFIX + key)


def settle_stage_one(server, kubeconfig: Path) -> None:
    """Stage 1 written to the cluster, and a training job on every assigned node (so round 1's
    drains wait for their deadlines instead of completing at once)."""
    from scheduler.actuator.writer import Writer
    from scheduler.actuator.connect import connect
    from scheduler.daemon.clock import Clock
    from scheduler.daemon.policy_source import PolicySource
    from scheduler.daemon.reconciler import Reconciler
    from scheduler.daemon.metrics import Metrics

    api = connect(str(kubeconfig))
    source = PolicySource(one_cluster_dir())
    source.reload()
    start = datetime.fromisoformat("2026-01-14T12:00:00+09:00")
    outcome = Reconciler(source, ClusterReader(api, KEYS), Clock(start=start, wall=lambda: 0.0), Metrics(), Writer(api)).reconcile()
    assert outcome.writes > 0 and outcome.failed == 0
    api.close()
    server.load_list({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"train-{name}", "namespace": c.namespaces[0]},
         "spec": {"nodeName": name, "containers": [{"name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
         "status": {"phase": "Running"}}
        for c in outcome.plan.consortia for name in c.nodes]})


def test_two_replicas_only_the_lease_holder_writes_and_sigterm_hands_over_at_once(sandbox, tmp_path):
    server, kubeconfig = sandbox
    a = Replica(kubeconfig, "2026-03-01T00:00:00+09:00", tmp_path / "a.log")
    b = Replica(kubeconfig, "2026-03-01T00:00:00+09:00", tmp_path / "b.log")
    try:
        wait_until(lambda: a.metric("gpu_scheduler_leader") + b.metric("gpu_scheduler_leader") == 1, what="one leader")
        wait_until(lambda: ns_label(server, "lg-exaone", "quota-gpus") == "1024", what="the leader's writes")
        leader, follower = (a, b) if a.metric("gpu_scheduler_leader") == 1 else (b, a)
        # the first batch (~2,000 writes) is counted when it has all landed
        wait_until(lambda: leader.metric("gpu_scheduler_api_writes_total") > 0, what="the leader's batch")
        wait_until(lambda: follower.metric("gpu_scheduler_reconcile_total") >= 2, what="the follower planning")
        assert follower.metric("gpu_scheduler_api_writes_total") == 0  # it plans, it never writes
        holder = lease_holder(server)

        assert leader.stop(signal.SIGTERM) == 0  # graceful: exit status 0
        # the Lease was handed back on the way out (holder cleared), so the follower need not wait
        # out its 15 s duration: right after the exit it is free or already the follower's
        assert lease_holder(server) != holder
        wait_until(lambda: follower.metric("gpu_scheduler_leader") == 1, timeout=30, what="the takeover")
        assert lease_holder(server) not in ("", holder)
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def test_a_daemon_killed_mid_drain_resumes_the_same_deadlines(sandbox, tmp_path):
    server, kubeconfig = sandbox
    # stage 1 already in place (written by an in-process reconcile, so no race with the clock),
    # then the daemon starts just after round 1 began: eliminated teams' nodes drain
    settle_stage_one(server, kubeconfig)
    start = datetime.fromisoformat("2026-01-15T18:00:05+09:00")
    began = time.monotonic()
    first = Replica(kubeconfig, start.isoformat(), tmp_path / "first.log")

    def deadlines() -> dict[str, str]:
        return {n["metadata"]["name"]: n["metadata"]["annotations"][PREFIX + "drain-deadline"]
                for n in server.list("nodes") if PREFIX + "drain-deadline" in n["metadata"].get("annotations", {})}

    try:
        wait_until(lambda: len(deadlines()) > 0, timeout=60, what="drains to start")
        wait_until(lambda: first.metric("gpu_scheduler_reconcile_total") >= 3, what="a settled first replica")
        before = deadlines()
        first.stop(signal.SIGKILL)  # no clean-up at all
        time.sleep(1)  # programme time moves on while it is down
        resumed = start + timedelta(seconds=time.monotonic() - began)  # the programme's clock, still running
        second = Replica(kubeconfig, resumed.isoformat(), tmp_path / "second.log")
        try:
            # the dead replica's Lease must expire first (15 s), then the new one reconciles
            wait_until(lambda: second.metric("gpu_scheduler_leader") == 1, timeout=40, what="the new leader")
            wait_until(lambda: second.metric("gpu_scheduler_reconcile_total") >= 2, what="its reconciles")
            after = deadlines()
            assert after and {n: after[n] for n in before if n in after} == {n: before[n] for n in before if n in after}
            assert set(before) <= set(after)  # nothing released early, nothing re-timed
        finally:
            second.stop(signal.SIGTERM)
    finally:
        first.stop(signal.SIGKILL)


def test_out_of_cluster_with_no_flags_it_leads_in_the_context_namespace_and_lands_the_plan(tmp_path):
    """The common first run: a kubeconfig whose context namespace is `default`, no
    `gpu-scheduler` namespace anywhere, no flags. The Lease goes where kubectl would look."""
    with SandboxServer(port=0, seed=5) as server:
        server.load_list(builtin_cluster(one_cluster_policy()))
        assert server.get("namespaces", "gpu-scheduler") is None
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")  # context namespace: default
        log = tmp_path / "run.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", "--kubeconfig", str(kubeconfig),
                                     "--policy", str(one_cluster_dir()), "--metrics-port", "0"],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
            try:
                wait_until(lambda: (server.get("leases", "gpu-scheduler-leader", "default") or {})
                           .get("spec", {}).get("holderIdentity"), what="a leader in namespace default")
                wait_until(lambda: ns_label(server, "lg-exaone", "quota-gpus") is not None, what="the plan landed")
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(20) == 0, log.read_text()


def test_a_lease_namespace_that_does_not_exist_stops_run_at_once_with_one_line(tmp_path):
    with SandboxServer(port=0, seed=5) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "scheduler.cli", "run", "--kubeconfig", str(kubeconfig),
                               "--metrics-port", "0", "--lease-namespace", "scheduler-system"],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 2
        assert time.monotonic() - started < 30  # no retry loop
        errors = [line for line in done.stderr.splitlines() if "gpu-scheduler run:" in line]
        assert errors == ["gpu-scheduler run: namespace 'scheduler-system' (for the leader Lease and the "
                          "scheduler's Events) does not exist: create it (kubectl create namespace scheduler-system) "
                          "or pass --lease-namespace"], done.stderr
        assert "Traceback" not in done.stderr and "HTTP response headers" not in done.stderr


def test_a_metrics_port_in_use_stops_run_at_once_with_one_line(sandbox, tmp_path):
    """Two replicas on one host and one port: the second says so and exits, no traceback."""
    import socket

    server, kubeconfig = sandbox
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "scheduler.cli", "run", "--kubeconfig", str(kubeconfig),
                               "--policy", str(one_cluster_dir()),
                               "--lease-namespace", "gpu-scheduler", "--metrics-port", str(port)],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert f"gpu-scheduler run: cannot serve /metrics on 0.0.0.0:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_simulate_serves_metrics_on_loopback_only_and_leaves_no_temp_folder(tmp_path):
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", "--simulate", "--metrics-port", "0",
                                 "--start", "2026-03-01", "--time-scale", "60"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_until(lambda: "metrics on :" in log.read_text(), what="the daemon to start")
            port = int(re.search(r"metrics on :(\d+)/metrics", log.read_text()).group(1))
            folder = Path(re.search(r"--kubeconfig (\S+)/kubeconfig", log.read_text()).group(1))
            assert folder.is_dir()
            assert listening_addresses(port) == ["127.0.0.1"]
            # a newcomer watching sees where the programme stands every few seconds
            wait_until(lambda: re.search(r"^\[2026-03-0\d \d\d:\d\d KST\] stage-2 \| GPUs held/target: lg ",
                                         log.read_text(), re.M), what="a progress line")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
    assert not folder.exists()


def test_a_clean_shutdown_logs_no_warning_and_says_the_lease_was_released(tmp_path):
    """SIGTERM after the first reconcile: the Lease is handed back in an info line; nothing on the
    way out is a warning (no lost Lease, no APScheduler skip, no full connection pool)."""
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", "--simulate", "--metrics-port", "0",
                                 "--start", "2026-03-01", "--time-scale", "3600", "--reconcile-every", "1"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_until(lambda: "acquired the leader Lease" in log.read_text(), what="leadership")
            wait_until(lambda: "metrics on :" in log.read_text(), what="the daemon to start")
            port = int(re.search(r"metrics on :(\d+)/metrics", log.read_text()).group(1))

            def reconciles() -> float:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                           if line.startswith("gpu_scheduler_reconcile_total{"))

            # the first reconcile's writes, the watch-woken one after them, and periodic ones
            wait_until(lambda: reconciles() >= 3, what="three reconciles")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
    text = log.read_text()
    assert re.search(r"INFO scheduler.daemon.leader: \S+ released the leader Lease gpu-scheduler/", text), text
    assert "lost the leader Lease" not in text
    assert not [line for line in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", line)], text


def listening_addresses(port: int) -> list[str]:
    """IPv4 addresses with a socket listening on `port`, from /proc/net/tcp (state 0A = LISTEN)."""
    import ipaddress

    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(str(ipaddress.IPv4Address(bytes(reversed(bytes.fromhex(address))))))
    return found
