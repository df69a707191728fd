"""The daemon against the sandbox API over HTTP: reconcile, steady state, followers, bad policies,
and the scheduled change points firing on a scaled clock."""

import shutil
import threading
import time
from pathlib import Path

import pytest

from scheduler.actuator.writer import Writer
from scheduler.actuator.connect import connect
from scheduler.cluster import Keys
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.daemon.clock import Clock
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.reconciler import Reconciler
from scheduler.daemon.service import Daemon
from scheduler.daemon.metrics import Metrics
from scheduler.policy import load_policy
from scheduler.sandbox import SandboxServer

from tests.builders import t
from tests.keys import KEYS
from tests.realpolicy import copy_one_cluster
from scheduler.actuator.watch import ClusterReader

REPO = Path(__file__).resolve().parents[2]
PREFIX = "gpu-scheduler.sovereign-ai.kr/"


class Wall:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def world(tmp_path):
    copy_one_cluster(tmp_path / "policies")  # the real programme, as one cluster (tests/realpolicy.py)
    server = SandboxServer(port=0, seed=1).start()
    server.load_list(builtin_cluster(load_policy(tmp_path / "policies")))
    server.load_list({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-scheduler"}}]})
    api = connect(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    source = PolicySource(tmp_path / "policies")
    source.reload()
    yield server, api, source, tmp_path
    api.close()
    server.stop()


def reconciler(api, source, clock, leader=True):
    return Reconciler(source, ClusterReader(api, KEYS), clock, Metrics(), Writer(api), is_leader=lambda: leader)


def writes(server):
    return sum(n for (verb, _), n in server.writes.items() if verb in ("create", "update", "patch", "delete"))


def ns_label(server, ns, key):
    return server.get("namespaces", ns)["metadata"].get("labels", {}).get(PREFIX + key)


def test_a_reconcile_writes_the_plan_and_the_next_one_writes_nothing(world):
    server, api, source, _ = world
    clock = Clock(start=t("2026-03-01 00:00"), wall=Wall())
    r = reconciler(api, source, clock)
    first = r.reconcile()
    assert first.writes > 0 and first.failed == 0
    assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"
    assert ns_label(server, "ncai-varco", "status") == "eliminated"
    before = writes(server)
    again = r.reconcile()
    assert again.writes == 0 and writes(server) == before  # steady state: zero writes


def test_a_follower_plans_but_never_writes(world):
    server, api, source, _ = world
    before = writes(server)
    outcome = reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall()), leader=False).reconcile()
    assert outcome.plan is not None and outcome.skipped == "not the leader"
    assert writes(server) == before


def test_round_one_trims_at_the_stage_start_and_drains_rather_than_yanks(world):
    server, api, source, _ = world
    wall = Wall()
    clock = Clock(start=t("2026-01-15 17:59:59"), wall=wall)
    r = reconciler(api, source, clock)
    r.reconcile()
    assert ns_label(server, "ncai-varco", "status") == "active"
    wall.now += 2
    outcome = r.reconcile()
    assert ns_label(server, "ncai-varco", "status") == "eliminated"  # the record: a cut team loses its GPUs
    assert ns_label(server, "lg-exaone", "stage") == "stage-2"
    ncai = outcome.plan.consortium("ncai")
    assert len(ncai.draining_nodes) == 128  # NC AI's leased H100: drained, not yanked
    node = server.get("nodes", ncai.draining_nodes[0])
    assert node["metadata"]["labels"][PREFIX + "node-state"] == "draining"
    assert PREFIX + "drain-deadline" in node["metadata"]["annotations"]
    assert {t_["key"] for t_ in node["spec"]["taints"]} == {PREFIX + "consortium", PREFIX + "draining"}
    assert not any(verb == "delete" for verb, _ in server.writes)  # nothing is ever deleted


def test_a_bad_policy_dropped_in_while_running_changes_nothing(world):
    server, api, source, folder = world
    r = reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall()))
    r.reconcile()
    before = writes(server)
    (folder / "policies" / "stages.yaml").write_text(
        (folder / "policies" / "stages.yaml").read_text().replace("lg: {B200: 512, H100: 512}", "lg: {B200: -1}"))
    daemon = Daemon(r, source, r.clock, r.metrics)
    daemon.check_policy()  # the reload check the daemon runs every 2 s
    assert source.error is not None
    assert r.reconcile().writes == 0
    assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"
    events = [e for e in server.list("events", "gpu-scheduler") if e["reason"] == "PolicyInvalid"]
    assert len(events) == 1 and "stages.yaml:" in events[0]["message"] and events[0]["type"] == "Warning"
    daemon.check_policy()  # the same bad policy is reported once
    assert len([e for e in server.list("events", "gpu-scheduler") if e["reason"] == "PolicyInvalid"]) == 1
    assert writes(server) == before + 1  # that Event is the only write


def test_a_replica_that_takes_over_reports_the_bad_policy_its_predecessor_never_reported(world):
    server, api, source, folder = world
    leading = {"now": False}
    r = Reconciler(source, ClusterReader(api, KEYS), Clock(start=t("2026-03-01 00:00"), wall=Wall()), Metrics(), Writer(api),
                   is_leader=lambda: leading["now"])
    (folder / "policies" / "stages.yaml").write_text("kind: Stage\n")
    daemon = Daemon(r, source, r.clock, r.metrics)
    daemon.check_policy()  # a follower sees the bad policy first: it writes nothing
    assert source.error is not None
    assert not [e for e in server.list("events", "gpu-scheduler") if e["reason"] == "PolicyInvalid"]
    leading["now"] = True  # the leader went away; this replica now holds the Lease
    daemon.tick("became leader")
    daemon.tick("periodic")
    events = [e for e in server.list("events", "gpu-scheduler") if e["reason"] == "PolicyInvalid"]
    assert len(events) == 1 and "stages.yaml" in events[0]["message"]


def test_the_daemon_reconciles_at_a_change_point_on_a_scaled_clock(world):
    server, api, source, _ = world
    metrics = Metrics()
    # one programme hour per real second, starting 2 programme hours before stage 2
    clock = Clock(start=t("2026-01-15 16:00"), scale=3600)
    r = Reconciler(source, ClusterReader(api, KEYS), clock, metrics, Writer(api))
    daemon = Daemon(r, source, clock, metrics, reconcile_every=3600)  # no periodic help: the change point must fire
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while ns_label(server, "lg-exaone", "stage") != "stage-2" and time.monotonic() < deadline:
            server.wait_for_change(timeout=1)
        assert ns_label(server, "lg-exaone", "stage") == "stage-2"
        assert daemon.ready() == (True, "")
    finally:
        daemon.stop()


def test_a_completed_round_settles_with_no_write_left_over(world):
    """Drains started, idle nodes released and given out again: the reconcile after that writes
    nothing (the allocation annotations already named the right next change)."""
    server, api, source, _ = world
    wall = Wall()
    clock = Clock(start=t("2026-01-15 17:59:59"), wall=wall)
    r = reconciler(api, source, clock)
    r.reconcile()
    wall.now += 2
    counts = [r.reconcile().writes for _ in range(4)]
    print("writes per reconcile through round 1:", counts)
    # the round's drains and namespace updates, then the idle drained nodes released and given out
    # again; then nothing (the allocation annotations already named the right next change)
    assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0]


def test_a_restart_in_the_middle_of_a_drain_resumes_the_same_deadline(world):
    server, api, source, _ = world
    wall = Wall()
    clock = Clock(start=t("2026-01-15 17:59:59"), wall=wall)
    reconciler(api, source, clock).reconcile()  # stage 1: NC AI holds 1,024 H100
    wall.now += 2
    first = reconciler(api, source, clock).reconcile()  # round 1: NC AI is cut, its nodes drain
    draining = first.plan.consortium("ncai").draining_nodes[0]
    deadline = server.get("nodes", draining)["metadata"]["annotations"][PREFIX + "drain-deadline"]
    # a training job still runs there, so the drain waits for it (or its deadline)
    from kubernetes import client
    client.CoreV1Api(api).create_namespaced_pod("ncai-varco", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pretrain-0"},
        "spec": {"nodeName": draining, "containers": [{"name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                                                        "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}})
    wall.now += 3600  # an hour later a new process (a restart, or the other replica) takes over
    again = reconciler(api, source, clock).reconcile()
    assert server.get("nodes", draining)["metadata"]["annotations"][PREFIX + "drain-deadline"] == deadline
    assert draining in again.plan.consortium("ncai").draining_nodes


def test_two_daemons_at_once_only_the_lease_holder_writes(world):
    from scheduler.daemon.leader import LeaderElector

    server, api, source, _ = world
    clock = Clock(start=t("2026-03-01 00:00"), wall=Wall())
    electors = [LeaderElector(api, "gpu-scheduler", "gpu-scheduler-leader", name) for name in ("one", "two")]
    writers = [Writer(api), Writer(api)]
    daemons = [Reconciler(source, ClusterReader(api, KEYS), clock, Metrics(), w, is_leader=lambda e=e: e.leading)
               for e, w in zip(electors, writers)]
    for e in electors:
        e.step()
    for d in daemons:
        d.reconcile()
    assert [e.leading for e in electors] == [True, False]
    assert sum(writers[0].counters.values()) > 0 and sum(writers[1].counters.values()) == 0
    electors[0].stop(release=True)  # the leader shuts down: the other takes over and has nothing to fix
    electors[1].step()
    assert electors[1].leading
    assert daemons[1].reconcile().writes == 0


def test_injected_faults_still_converge_to_the_fault_free_end_state(world, tmp_path):
    from scheduler.sandbox import Faults

    server, api, source, _ = world
    clock = Clock(start=t("2026-01-15 00:00:01"), wall=Wall())
    clean = reconciler(api, source, clock)
    clean.reconcile()
    expected = {n["metadata"]["name"]: n["metadata"]["labels"].get(PREFIX + "consortium")
                for n in server.list("nodes")}

    faulty = SandboxServer(port=0, seed=7, faults=Faults(seed=7)).start()
    try:
        faulty.load_list(builtin_cluster(source.policy))
        faulty.faults.add(verb="patch", resource="nodes", fraction=0.05, fault=409)
        faulty.faults.add(verb="patch", resource="*", fraction=0.03, fault=500)
        faulty.faults.add(verb="create", resource="*", fraction=0.03, fault=429)
        faulty_api = connect(str(faulty.write_kubeconfig(tmp_path / "faulty")))
        writer = Writer(faulty_api, sleep=lambda s: None)
        r = Reconciler(source, ClusterReader(faulty_api, KEYS), clock, Metrics(), writer)
        for _ in range(5):
            if r.reconcile().writes == 0:
                break
        got = {n["metadata"]["name"]: n["metadata"]["labels"].get(PREFIX + "consortium") for n in faulty.list("nodes")}
        assert got == expected
        assert faulty.faults.total > 0 and sum(writer.retries.values()) > 0
        assert not any(verb == "delete" for verb, _ in faulty.writes)
        owners = [o for o in got.values() if o]
        assert len(owners) == sum(1 for n in got.values() if n)  # one owner per node, by construction of labels
        print(f"faults injected: {faulty.faults.total}, writes retried: {sum(writer.retries.values())}")
    finally:
        faulty.stop()


def test_kubectl_reads_the_quota_labels(world, kubectl):
    import subprocess

    server, api, source, folder = world
    reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall())).reconcile()
    out = subprocess.run([str(kubectl), "--kubeconfig", str(folder / "kubeconfig"), "get", "ns", "-L",
                          f"{PREFIX}status,{PREFIX}quota-gpus,{PREFIX}allocated-gpus"],
                         capture_output=True, text=True, check=True).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("lg-exaone"))
    assert row[-3:] == ["active", "1024", "1024"]


def test_a_watched_change_wakes_a_reconcile_that_reverts_drift(world):
    from kubernetes import client

    from scheduler.actuator.watch import Watcher

    server, api, source, _ = world
    metrics = Metrics()
    clock = Clock(start=t("2026-03-01 00:00"), scale=1)
    r = Reconciler(source, ClusterReader(api, KEYS), clock, metrics, Writer(api))
    daemon = Daemon(r, source, clock, metrics, reconcile_every=3600, debounce=0.2)  # only watches can wake it
    daemon.start()
    watcher = Watcher(api, KEYS, on_change=daemon.changed).start()
    try:
        deadline = time.monotonic() + 20
        while ns_label(server, "lg-exaone", "quota-gpus") != "1024" and time.monotonic() < deadline:
            server.wait_for_change(timeout=1)
        # a consortium engineer raises their own quota label by hand
        client.CoreV1Api(api).patch_namespace("lg-exaone", {"metadata": {"labels": {PREFIX + "quota-gpus": "4096"}}})
        deadline = time.monotonic() + 20
        while ns_label(server, "lg-exaone", "quota-gpus") != "1024" and time.monotonic() < deadline:
            server.wait_for_change(timeout=1)
        assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"
        with r.lock:  # the reconcile that wrote it counts it once its writes return
            assert metrics.drift_reverted_total.labels("namespace")._value.get() == 1
    finally:
        watcher.stop()
        daemon.stop()


def test_a_steady_cluster_is_read_from_the_watch_cache_and_drift_still_reverted(world):
    """Once a fresh list shows the cache has caught up with our writes, reconciles list nothing
    (and, the cache unchanged, read and plan nothing either); a write makes the next reconcile list
    afresh again."""
    from kubernetes import client

    from scheduler.actuator.watch import Watcher

    server, api, source, _ = world
    metrics = Metrics()
    r = Reconciler(source, ClusterReader(api, KEYS), Clock(start=t("2026-03-01 00:00"), wall=Wall()), metrics, Writer(api))
    with Watcher(api, KEYS) as watcher:
        r.reader.cache = watcher
        assert r.reconcile().writes > 0
        deadline = time.monotonic() + 20
        while r.reconcile().writes or not r.reader.trusted:  # the cache catches up with our writes
            assert time.monotonic() < deadline
            time.sleep(0.2)
        lists = sum(n for (verb, resource), n in server.requests.items() if verb == "list")
        assert r.reconcile().writes == 0 and r.reader.reads["cache"] >= 1  # planned from the cache
        assert sum(n for (verb, resource), n in server.requests.items() if verb == "list") == lists
        reads = dict(r.reader.reads)
        for _ in range(3):
            outcome = r.reconcile()
            assert outcome.writes == 0 and outcome.skipped == "nothing changed"
        assert r.reader.reads == reads  # at rest: not even the cache is read
        assert sum(n for (verb, resource), n in server.requests.items() if verb == "list") == lists  # no list at all

        client.CoreV1Api(api).patch_namespace("lg-exaone", {"metadata": {"labels": {PREFIX + "quota-gpus": "4096"}}})
        assert watcher.wait_for(lambda s: s.namespaces["lg-exaone"].labels.get(PREFIX + "quota-gpus") == "4096")
        assert r.reconcile().writes == 2  # planned from the cache: the label put back, a DriftReverted Event
        assert ns_label(server, "lg-exaone", "quota-gpus") == "1024"
        r.reconcile()
        assert r.reader.reads["list"] == reads["list"] + 1  # after its own write, it lists afresh


def test_a_leader_that_loses_the_lease_mid_batch_stops_writing_at_once(world):
    server, api, source, _ = world
    answers = iter([True] + [True] * 100 + [False] * 100000)  # leads for the plan and 100 writes, then loses it
    r = Reconciler(source, ClusterReader(api, KEYS), Clock(start=t("2026-03-01 00:00"), wall=Wall()), Metrics(), Writer(api),
                   is_leader=lambda: next(answers))
    before = writes(server)
    outcome = r.reconcile()
    assert outcome.writes == 100 and writes(server) - before == 100


def test_readyz_turns_unready_when_the_cluster_cannot_be_read_any_more(world):
    server, api, source, _ = world
    metrics = Metrics()
    r = reconciler(api, source, Clock(start=t("2026-03-01 00:00"), wall=Wall()))
    daemon = Daemon(r, source, r.clock, metrics, reconcile_every=30)
    assert daemon.ready() == (False, "cluster not read yet")
    r.reconcile()
    assert daemon.ready() == (True, "")
    r.last_read -= 200  # no successful read for 200 s: three periods and more
    ready, why = daemon.ready()
    assert not ready and "not read for" in why


def test_under_another_label_prefix_a_round_lands_and_then_writes_nothing(world):
    """The chart's `labelPrefix` over HTTP: round 1 lands under example.com keys only, and with
    drains under way, a reconcile a minute later writes nothing (drain reasons are kept)."""
    server, api, source, _ = world
    keys = Keys("example.com")
    wall = Wall()
    r = Reconciler(source, ClusterReader(api, keys), Clock(start=t("2026-01-14 23:00"), wall=wall), Metrics(),
                   Writer(api))

    def settle() -> None:
        for _ in range(5):  # evict -> release -> reassign take a few reconciles at one instant
            if r.reconcile().writes == 0:
                return
        pytest.fail("did not settle in 5 reconciles")

    settle()  # stage 2 in force: every team holds its nodes, and keeps them busy
    server.load_list({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"train-{name}", "namespace": c.namespaces[0]},
         "spec": {"nodeName": name, "containers": [{"name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
         "status": {"phase": "Running"}}
        for c in r.last.plan.consortia for name in c.nodes]})
    # 2026-01-15 19:00: round 1 decided an hour ago, NC AI's nodes draining (the drains count from
    # the cut at 18:00 and last 2 h, however late the daemon sees the cut)
    wall.now += 20 * 3600
    settle()
    draining = [n["metadata"] for n in server.list("nodes") if n["metadata"]["labels"].get(keys.node_state) == "draining"]
    assert draining, "no node drains at this instant: the test would prove nothing"
    assert all(m.get("annotations", {}).get(keys.drain_reason) for m in draining), "a drain lost its reason"
    wall.now += 60
    assert r.reconcile().writes == 0
    for node in server.list("nodes"):
        managed = [k for k in (*node["metadata"].get("labels", {}), *node["metadata"].get("annotations", {}))
                   if k.startswith(PREFIX)]
        assert managed == [] or managed == [PREFIX + "pool"], (node["metadata"]["name"], managed)


def test_at_rest_a_reconcile_does_nothing_until_the_cluster_the_policy_or_the_clock_moves(world):
    """A fleet at rest costs no CPU: with the watch cache current and unchanged, the same policy and
    no change point reached, a reconcile neither reads, plans nor diffs. Any of those moving makes
    the next one plan again."""
    from kubernetes import client

    from scheduler.actuator.watch import Watcher
    from scheduler.daemon import reconciler as reconciler_module

    server, api, source, folder = world
    wall = Wall()
    r = Reconciler(source, ClusterReader(api, KEYS), Clock(start=t("2026-03-01 00:00"), wall=wall), Metrics(),
                   Writer(api))
    planned = []
    real_plan = reconciler_module.plan

    def counting_plan(*args, **kwargs):
        planned.append(args[2])
        return real_plan(*args, **kwargs)

    reconciler_module.plan = counting_plan
    try:
        with Watcher(api, KEYS) as watcher:
            r.reader.cache = watcher
            deadline = time.monotonic() + 20
            while r.reconcile().skipped != "nothing changed":  # settle: writes, a fresh list, the cache trusted
                assert time.monotonic() < deadline
                time.sleep(0.1)
            before = len(planned)
            assert [r.reconcile().skipped for _ in range(5)] == ["nothing changed"] * 5 and len(planned) == before

            # the cluster moves: a label nobody manages changes on a node the planner reads
            client.CoreV1Api(api).patch_node("gov-b200-a-0000", {"spec": {"unschedulable": True}})
            assert watcher.wait_for(lambda s: next(n for n in s.nodes if n.name == "gov-b200-a-0000").unschedulable)
            assert r.reconcile().skipped == "" and len(planned) == before + 1

            # the clock reaches the next change point (SK Telecom's eligibility, 2026-07-01... or earlier)
            while r.reconcile().skipped != "nothing changed":
                time.sleep(0.1)
            nxt = r.last.plan.next_change.at
            wall.now += (nxt - r.clock.now()).total_seconds() - 60
            assert r.reconcile().skipped == "nothing changed"  # a minute before: still at rest
            wall.now += 120
            assert r.reconcile().skipped == "" and planned[-1] > nxt

            # the policy changes
            while r.reconcile().skipped != "nothing changed":
                time.sleep(0.1)
            stages = folder / "policies" / "stages.yaml"
            stages.write_text(stages.read_text().replace("skt: {B200: 512}", "skt: {B200: 256}"))
            source.reload()
            count = len(planned)
            r.reconcile()
            assert len(planned) == count + 1
    finally:
        reconciler_module.plan = real_plan


def test_a_policy_that_selects_on_another_label_widens_what_the_cache_keeps(world):
    """The daemon keeps only the node labels its policy reads; a new policy that reads another
    (here a topology key) has the nodes listed again with it before it plans."""
    from scheduler.actuator.watch import Watcher
    from scheduler.planner.nodes import label_keys

    server, api, source, folder = world
    keys = KEYS.reading(label_keys(source.policy))
    r = Reconciler(source, ClusterReader(api, keys), Clock(start=t("2026-03-01 00:00"), wall=Wall()), Metrics(),
                   Writer(api))
    zone = "topology.kubernetes.io/zone"
    with Watcher(api, keys) as watcher:
        r.reader.cache = watcher
        r.reconcile()
        assert all(zone not in n.labels for n in watcher.snapshot().nodes)
        program = folder / "policies" / "program.yaml"
        program.write_text(program.read_text().replace("topologyKey: nvidia.com/gpu.clique", f"topologyKey: {zone}"))
        assert source.reload().changed
        r.reconcile()
        assert zone in r.reader.keys.node_labels and watcher.keys == r.reader.keys
        assert all(zone in n.labels for n in watcher.snapshot().nodes)
        assert all(zone in n.labels for n in r.reader.read().nodes)
