"""The official client's leader election (LeaseLock on coordination.k8s.io/v1) runs against the
sandbox, as the daemon's does: it creates the Lease, renews it with replace, and steps down."""

from __future__ import annotations

import threading
import time

from kubernetes import client, config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from scheduler.sandbox import SandboxServer


def test_leader_election_takes_and_renews_the_lease(kubeconfig, server: SandboxServer):
    previous = client.Configuration.get_default_copy()
    config.load_kube_config(config_file=str(kubeconfig))  # LeaseLock uses the default client
    try:
        lock = LeaseLock("gpu-scheduler", "kube-system", "gpu-scheduler-0")
    finally:
        client.Configuration.set_default(previous)
    leading, stop, stopped = threading.Event(), threading.Event(), threading.Event()

    def lead() -> None:
        leading.set()
        stop.wait(timeout=30)
        raise RuntimeError("the test ends this leadership")  # makes run() step down

    election = leaderelection.LeaderElection(electionconfig.Config(
        lock, lease_duration=3, renew_deadline=2, retry_period=1,
        onstarted_leading=lead, onstopped_leading=stopped.set))
    threading.Thread(target=election.run, daemon=True).start()
    try:
        assert leading.wait(timeout=10)
        lease = server.get("leases", "gpu-scheduler", "kube-system")
        assert lease["spec"]["holderIdentity"] == "gpu-scheduler-0"
        assert lease["spec"]["leaseDurationSeconds"] == 3
        deadline = time.monotonic() + 10
        renewed = lease
        while renewed["metadata"]["resourceVersion"] == lease["metadata"]["resourceVersion"] \
                and time.monotonic() < deadline:
            server.wait_for_change(timeout=deadline - time.monotonic())
            renewed = server.get("leases", "gpu-scheduler", "kube-system")
        assert renewed["spec"]["renewTime"] >= lease["spec"]["renewTime"]
        assert renewed["spec"]["holderIdentity"] == "gpu-scheduler-0"
    finally:
        stop.set()
    assert stopped.wait(timeout=10)
    assert server.writes[("update", "leases")] >= 1
