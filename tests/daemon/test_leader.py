"""Leader election against the sandbox API over HTTP: one leader, hand-over on release or expiry."""

import pytest
from kubernetes import client

from scheduler.daemon.leader import LeaderElector
from scheduler.sandbox import SandboxServer

from tests.sandbox.conftest import api_client_for


class Ticks:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def sandbox(tmp_path):
    srv = SandboxServer(port=0, seed=1).start()
    srv.load_list({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-scheduler"}}]})
    yield api_client_for(srv.write_kubeconfig(tmp_path / "kubeconfig"))
    srv.stop()


def elector(api, identity, clock):
    return LeaderElector(api, "gpu-scheduler", "gpu-scheduler-leader", identity, monotonic=clock)


def test_only_one_replica_leads(sandbox):
    clock = Ticks()
    a, b = elector(sandbox, "a", clock), elector(sandbox, "b", clock)
    a.step()
    b.step()
    assert a.leading and not b.leading
    clock.t += 5
    a.step()
    b.step()
    assert a.leading and not b.leading
    lease = client.CoordinationV1Api(sandbox).read_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler")
    assert lease.spec.holder_identity == "a" and lease.spec.lease_duration_seconds == 15


def test_a_silent_leader_is_replaced_after_the_lease_duration(sandbox):
    clock = Ticks()
    a, b = elector(sandbox, "a", clock), elector(sandbox, "b", clock)
    a.step()
    b.step()
    clock.t += 14  # a stops renewing (crashed); b has seen the same renewTime for 14 s
    b.step()
    assert not b.leading
    clock.t += 2
    b.step()
    assert b.leading
    lease = client.CoordinationV1Api(sandbox).read_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler")
    assert lease.spec.holder_identity == "b" and lease.spec.lease_transitions == 1


def test_a_leader_that_shuts_down_hands_over_at_once(sandbox):
    clock = Ticks()
    changes = []
    a = LeaderElector(sandbox, "gpu-scheduler", "gpu-scheduler-leader", "a", monotonic=clock,
                      on_change=changes.append)
    b = elector(sandbox, "b", clock)
    a.step()
    b.step()
    a.stop(release=True)
    assert changes == [True, False]
    clock.t += 2  # one retry period, not a whole lease duration
    b.step()
    b.step()
    assert b.leading


def test_a_clean_shutdown_releases_the_lease_in_one_info_line_and_loses_nothing(sandbox, caplog):
    import logging

    changes = []
    a = LeaderElector(sandbox, "gpu-scheduler", "gpu-scheduler-leader", "a", monotonic=Ticks(),
                      on_change=changes.append)
    a.step()
    with caplog.at_level(logging.DEBUG, logger="scheduler.daemon.leader"):
        a.stop(release=True)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "scheduler.daemon.leader"]
    assert said == [("INFO", "a released the leader Lease gpu-scheduler/gpu-scheduler-leader")]
    assert changes == [True, False] and not a.leading
    lease = client.CoordinationV1Api(sandbox).read_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler")
    assert lease.spec.holder_identity is None


def test_a_leader_cut_off_from_the_api_steps_down_after_the_renew_deadline(sandbox, monkeypatch):
    clock = Ticks()
    a = elector(sandbox, "a", clock)
    a.step()
    assert a.leading

    def down(*args, **kwargs):
        raise ConnectionError("API unreachable")

    monkeypatch.setattr(a, "try_acquire_or_renew", down)
    clock.t += 5
    a.step()
    assert a.leading  # still inside the renew deadline
    clock.t += 6
    a.step()
    assert not a.leading


def test_a_hijacked_lease_is_honoured_only_for_a_bounded_time_and_shows_as_nobody_leading(sandbox):
    """A Lease rewritten to `holderIdentity: evil, leaseDurationSeconds: 999999` would stop every
    replica for 11 days. Its duration is honoured up to max_foreign_duration (60 s); while it
    holds, `somebody_leads` tells readiness the truth once the holder stops renewing."""
    clock = Ticks()
    a = elector(sandbox, "a", clock)
    a.step()
    coord = client.CoordinationV1Api(sandbox)
    lease = coord.read_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler")
    lease.spec.holder_identity, lease.spec.lease_duration_seconds = "evil", 999999
    coord.replace_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler", lease)
    clock.t += 1
    a.step()
    assert not a.leading and a.holder == "evil" and a.somebody_leads
    clock.t += 59
    a.step()
    assert not a.leading  # within the honoured minute
    clock.t += 2
    a.step()
    assert a.leading and a.holder == "a"
    assert coord.read_namespaced_lease("gpu-scheduler-leader", "gpu-scheduler").spec.holder_identity == "a"



def test_a_replica_is_unready_while_nobody_leads():
    """/readyz follows leadership: with the Lease held by nobody (or by something that stopped
    renewing), no replica writes, and the Deployment must show it."""
    from types import SimpleNamespace

    from scheduler.daemon.service import Daemon

    leads = [True]
    reconciler = SimpleNamespace(synced=True, last_read=None)
    source = SimpleNamespace(valid=True, policy=object())
    daemon = Daemon(reconciler, source, clock=None, metrics=None, somebody_leads=lambda: leads[0])  # type: ignore[arg-type]
    assert daemon.ready() == (True, "")
    leads[0] = False
    ok, why = daemon.ready()
    assert not ok and why.startswith("no replica leads")


def test_an_api_that_is_gone_is_logged_in_a_few_one_line_warnings_not_one_every_retry(tmp_path, caplog):
    import logging

    srv = SandboxServer(port=0, seed=1).start()
    api = api_client_for(srv.write_kubeconfig(tmp_path / "kubeconfig"))
    srv.stop()
    a = elector(api, "a", Ticks())
    with caplog.at_level(logging.DEBUG, logger="scheduler.daemon.leader"):
        for _ in range(25):
            a.step()
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "scheduler.daemon.leader"]
    assert len(warnings) == 4  # attempts 1, 2, 3 and 21
    assert all("\n" not in w and "(" in w for w in warnings)
    assert not a.leading and not a.somebody_leads
