"""actuator/writer.py against the sandbox API server, over HTTP, with the official client: whole
reconciles of the real programme, retries under injected faults, evictions, dry run, Events and
the order writes go out in."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter

from kubernetes import client

from scheduler.actuator.connect import connect
from scheduler.actuator.reads import read_snapshot
from scheduler.actuator.retry import Backoff
from scheduler.actuator.writer import Writer
from scheduler.actuator.writes import GIVING, MERGE_PATCH, Write, desired_writes, eviction
from scheduler.planner.plan import plan
from scheduler.sandbox import SandboxServer
from tests.builders import programme, stage_yaml
from tests.keys import KEYS
from tests.sandbox.conftest import namespace, node, pod, v1_list

from .conftest import MARCH_2026, deletes

# the sandbox counts (verb, resource); the writer counts (resource, verb)
SANDBOX_VERB = {"patch": "patch", "create": "create", "evict": "create"}


def reconcile(api, policy, at, writer: Writer):
    """One reconcile of the daemon: read, plan, write. The writes and what became of them."""
    snapshot, _ = read_snapshot(api, KEYS)
    writes = desired_writes(plan(policy, snapshot, at, KEYS), snapshot, policy, KEYS)
    return writes, writer.apply(writes)


def managed_state(api):
    """What the scheduler writes, as read back: nodes, namespaces and quotas (not Events)."""
    snapshot, _ = read_snapshot(api, KEYS)
    return snapshot.nodes, dict(snapshot.namespaces), dict(snapshot.quotas)


def as_sandbox_counts(counts: Counter) -> Counter:
    return Counter({(SANDBOX_VERB[verb], resource): n for (resource, verb), n in counts.items()})


# -- the first reconcile of the real programme, and steady state -----------------------------------
def test_the_first_reconcile_converges_and_the_next_writes_nothing(server, api, real_policy, real_cluster, fake_sleep):
    server.load_list(real_cluster)
    writer = Writer(api, sleep=fake_sleep)
    writes, report = reconcile(api, real_policy, MARCH_2026, writer)
    print(f"\nfirst reconcile of the real programme at 2026-03-01: {len(writes)} writes "
          f"{dict(sorted(report.writes.items()))}")
    assert report.ok and len(report.done) == len(writes) and not report.retries
    assert as_sandbox_counts(report.writes) == +Counter(server.writes)
    assert writer.counters == report.writes

    before = Counter(server.writes)
    again, report = reconcile(api, real_policy, MARCH_2026, writer)
    print(f"steady state: {len(again)} writes")
    assert again == [] and not report.done
    assert Counter(server.writes) == before
    assert deletes(server) == {}


# -- retries ---------------------------------------------------------------------------------------
def faults_sequence(seed: int, length: int, share: float) -> list[int | None]:
    rng = random.Random(seed)
    return [rng.choice([409, 429, 500]) if rng.random() < share else None for _ in range(length)]


def test_injected_conflicts_throttling_and_server_errors_converge_to_the_same_state(
        real_policy, real_cluster, tmp_path, fake_sleep):
    end_states = []
    for faulty in (False, True):
        with SandboxServer(port=0, seed=7) as server:
            server.load_list(real_cluster)
            if faulty:
                server.faults.add(verb="patch", resource="nodes", sequence=faults_sequence(3, 3000, 0.15))
                server.faults.add(verb="patch", resource="namespaces", sequence=[500, 409, None, 429])
                server.faults.add(verb="create", resource="events", sequence=faults_sequence(4, 600, 0.1))
                server.faults.add(verb="create", resource="resourcequotas", sequence=[500, 409])
            with connect(str(server.write_kubeconfig(tmp_path / f"kubeconfig-{faulty}"))) as api:
                writer = Writer(api, sleep=fake_sleep, backoff=Backoff(rng=random.Random(1)))
                writes, report = reconcile(api, real_policy, MARCH_2026, writer)
                assert report.ok, report.failed[:3]
                if faulty:
                    assert sum(report.retries.values()) >= server.faults.total > 50
                    assert report.retries[("nodes", "patch")] > 0 and report.retries[("events", "create")] > 0
                    assert as_sandbox_counts(report.writes) == +Counter(server.writes)
                again, _ = reconcile(api, real_policy, MARCH_2026, writer)
                assert again == []
                end_states.append(managed_state(api))
                events = sorted(e["metadata"]["name"] for e in server.list("events"))
                end_states[-1] += (events,)
                assert deletes(server) == {}
    assert end_states[0] == end_states[1]
    waits = fake_sleep.waits
    assert waits and max(waits) <= 5.0 + 1e-9
    assert any(w >= 1.0 for w in waits)  # the sandbox's 429s ask for Retry-After: 1


def test_a_conflict_on_a_taint_patch_rereads_the_node_and_keeps_a_taint_added_meanwhile(server, api, fake_sleep):
    server.load_list(v1_list(node("h100-000", {"pool": "h100"})))
    core = client.CoreV1Api(api)
    foreign = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-03-01T00:00:00Z"}
    core.patch_node("h100-000", {"spec": {"taints": [foreign]}}, _content_type=MERGE_PATCH)
    ours = {"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"}
    write = Write("nodes", "patch", "h100-000", body={"metadata": {"labels": {KEYS.consortium: "a"}},
                                                      "spec": {"taints": [ours]}},
                  content_type=MERGE_PATCH, taint_keys=(KEYS.consortium, KEYS.draining_taint))
    server.faults.add(verb="patch", resource="nodes", sequence=[409, None])
    report = Writer(api, sleep=fake_sleep).apply([write])
    assert report.ok and report.retries == Counter({("nodes", "patch"): 1})
    assert server.requests[("get", "nodes")] == 2  # read again after the conflict
    live = server.get("nodes", "h100-000")
    assert live["spec"]["taints"] == [foreign, ours]
    assert live["metadata"]["labels"][KEYS.consortium] == "a"
    assert fake_sleep.waits == []  # a conflict is re-applied at once


def test_a_taint_patch_whose_taints_are_already_live_sends_only_the_labels(server, api):
    ours = {"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"}
    server.load_list(v1_list(node("h100-000", spec={"taints": [ours]})))
    write = Write("nodes", "patch", "h100-000", body={"spec": {"taints": [ours]}}, content_type=MERGE_PATCH,
                  taint_keys=(KEYS.consortium,))
    report = Writer(api).apply([write])
    assert report.ok and server.writes[("patch", "nodes")] == 0


def test_a_quota_that_exists_already_is_patched_instead(server, api):
    server.load_list(v1_list(namespace("lg-exaone"), {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone"},
        "spec": {"hard": {"requests.cpu": "10"}}}))
    create = Write("resourcequotas", "create", "gpu-scheduler", "lg-exaone", body={
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone"},
        "spec": {"hard": {"requests.nvidia.com/gpu": "64"}}})
    report = Writer(api).apply([create])
    assert report.ok and report.writes == Counter({("resourcequotas", "patch"): 1})
    assert server.get("resourcequotas", "gpu-scheduler", "lg-exaone")["spec"]["hard"] == {
        "requests.cpu": "10", "requests.nvidia.com/gpu": "64"}


def test_a_rejected_write_is_recorded_and_the_rest_still_happen(server, api):
    server.load_list(v1_list(node("a"), node("b"), namespace("lg-exaone")))
    bad = Write("nodes", "patch", "a", body={"metadata": {"labels": {KEYS.node_state: "not a valid value!"}}},
                content_type=MERGE_PATCH)
    good = Write("nodes", "patch", "b", body={"metadata": {"labels": {KEYS.node_state: "free"}}},
                 content_type=MERGE_PATCH)
    about_bad = Write("events", "create", "e1", "lg-exaone", body={}, reports_on=(bad.key,))
    report = Writer(api).apply([bad, good, about_bad])
    [(failed, why)] = report.failed
    assert failed is bad and "422" in why
    assert report.done == [good] and [w for w, _ in report.skipped] == [about_bad]
    assert server.get("nodes", "b")["metadata"]["labels"][KEYS.node_state] == "free"


def test_a_missing_node_fails_only_its_own_write(server, api):
    write = Write("nodes", "patch", "gone", body={"metadata": {"labels": {KEYS.node_state: "free"}}},
                  content_type=MERGE_PATCH)
    report = Writer(api).apply([write])
    assert [why for _, why in report.failed] and "404" in report.failed[0][1]


def test_server_errors_give_up_after_the_last_attempt_with_capped_backoff(server, api, fake_sleep):
    server.load_list(v1_list(node("a")))
    server.faults.add(verb="patch", resource="nodes", fraction=1.0, fault=500)
    write = Write("nodes", "patch", "a", body={"metadata": {"labels": {KEYS.node_state: "free"}}},
                  content_type=MERGE_PATCH)
    report = Writer(api, sleep=fake_sleep, backoff=Backoff(attempts=6)).apply([write])
    assert not report.ok and "gave up after 6 attempts" in report.failed[0][1]
    assert server.requests[("patch", "nodes")] == 6 and len(fake_sleep.waits) == 5
    assert all(0 <= w <= min(5.0, 0.2 * 2 ** i) for i, w in enumerate(fake_sleep.waits))


# -- evictions -------------------------------------------------------------------------------------
def drained_past_deadline():
    """A node of team a draining since 21:00, deadline 23:00, still running a GPU pod."""
    draining = node("h100-007", {"pool": "h100", KEYS.consortium: "a", KEYS.node_state: "draining"},
                    spec={"taints": [{"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"},
                                     {"key": KEYS.draining_taint, "value": "true", "effect": "NoSchedule"}]})
    draining["metadata"]["annotations"] = {KEYS.drain_started: "2026-02-28T21:00:00+09:00",
                                           KEYS.drain_deadline: "2026-02-28T23:00:00+09:00"}
    kept = node("h100-000", {"pool": "h100", KEYS.consortium: "a", KEYS.node_state: "assigned"},
                spec={"taints": [{"key": KEYS.consortium, "value": "a", "effect": "NoSchedule"}]})
    return v1_list(kept, draining, namespace("a-ns"), namespace("tools"),
                   pod("train-late", "a-ns", "h100-007", gpus=8), pod("log-agent", "tools", "h100-007"),
                   pod("train-kept", "a-ns", "h100-000", gpus=8))


def one_team():
    return programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 8}}"), consortia="a",
                     pools=("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, topologyKey: block}",))


def test_eviction_past_the_drain_deadline_removes_only_that_gpu_pod(server, api, fake_sleep):
    server.load_list(drained_past_deadline())
    policy = one_team()
    writes, report = reconcile(api, policy, MARCH_2026, Writer(api, sleep=fake_sleep))
    assert [w.name for w in writes if w.resource == "pods/eviction"] == ["train-late"]
    assert report.ok
    assert server.writes[("create", "pods/eviction")] == 1
    assert server.get("pods", "train-late", "a-ns") is None
    assert server.get("pods", "log-agent", "tools") is not None  # not a GPU pod
    assert server.get("pods", "train-kept", "a-ns") is not None  # not on the node being drained
    assert deletes(server) == {}
    # the next reconcile releases the emptied node
    again, _ = reconcile(api, policy, MARCH_2026, Writer(api, sleep=fake_sleep))
    assert server.get("nodes", "h100-007")["metadata"]["labels"][KEYS.node_state] == "free"


def test_an_eviction_refused_by_a_disruption_budget_waits_and_retries(server, api, fake_sleep):
    server.load_list(drained_past_deadline())
    server.faults.add(verb="create", resource="pods/eviction", sequence=[429, 429, None])
    report = Writer(api, sleep=fake_sleep).apply([eviction("a-ns", "train-late")])
    assert report.ok and report.retries == Counter({("pods/eviction", "evict"): 2})
    assert len(fake_sleep.waits) == 2 and min(fake_sleep.waits) >= 1.0
    assert server.get("pods", "train-late", "a-ns") is None


def test_an_eviction_a_budget_keeps_refusing_is_given_up_and_the_pod_stays(server, api, fake_sleep):
    server.load_list(drained_past_deadline())
    server.faults.add(verb="create", resource="pods/eviction", fraction=1.0, fault=429)
    report = Writer(api, sleep=fake_sleep).apply([eviction("a-ns", "train-late")])
    assert "PodDisruptionBudget" in report.failed[0][1]
    assert server.get("pods", "train-late", "a-ns") is not None


def test_evicting_a_pod_that_is_gone_already_is_done(server, api):
    server.load_list(v1_list(namespace("a-ns")))
    assert Writer(api).apply([eviction("a-ns", "finished")]).ok


# -- dry run ---------------------------------------------------------------------------------------
def test_dry_run_logs_every_write_and_makes_none(server, api, real_policy, real_cluster, caplog):
    server.load_list(real_cluster)
    writer = Writer(api, dry_run=True)
    with caplog.at_level(logging.INFO, logger="scheduler.actuator.writer"):
        writes, report = reconcile(api, real_policy, MARCH_2026, writer)
    assert writes and report.dry_run == writes and not report.done
    assert +Counter(server.writes) == Counter() and not writer.counters
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dry-run: would")]
    assert len(lines) == len(writes)
    assert any(line.startswith("dry-run: would patch nodes ") and KEYS.node_state in line for line in lines)


# -- events ----------------------------------------------------------------------------------------
def test_a_retried_reconcile_does_not_duplicate_events(server, api, real_policy, real_cluster):
    server.load_list(real_cluster)
    snapshot, _ = read_snapshot(api, KEYS)
    writes = desired_writes(plan(real_policy, snapshot, MARCH_2026, KEYS), snapshot, real_policy, KEYS)
    events = [w for w in writes if w.resource == "events"]
    Writer(api).apply(events[:10])
    report = Writer(api).apply(events)  # the same reconcile, retried after a crash
    assert report.ok and len(server.list("events")) == len(events)
    assert server.writes[("create", "events")] == len(events)


def test_events_are_served_to_kubectl_get_events_in_the_namespace(server, api, real_policy, real_cluster):
    server.load_list(real_cluster)
    reconcile(api, real_policy, MARCH_2026, Writer(api))
    listed = client.CoreV1Api(api).list_namespaced_event("naver-hyperclova").items
    assert sorted((e.reason, e.type, e.involved_object.kind) for e in listed) == [
        ("Eliminated", "Warning", "Namespace"), ("QuotaChanged", "Normal", "Namespace")]


def test_writes_of_one_phase_go_out_together_phases_in_order_and_nodes_given_out_one_by_one(api, monkeypatch):
    log: list[tuple[str, str, float, float]] = []
    lock = threading.Lock()
    in_flight, most = [0], [0]

    def send(self, w):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0]) if w.phase == "taking" else most[0]
        began = time.monotonic()
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
            log.append((w.phase, w.name, began, time.monotonic()))

    monkeypatch.setattr(Writer, "_send", send)
    writes = ([Write("nodes", "patch", f"t{i}", phase="taking") for i in range(16)]
              + [Write("nodes", "patch", f"g{i}", phase=GIVING) for i in range(5)]
              + [Write("events", "create", f"e{i}", "ns", phase="events") for i in range(8)])
    report = Writer(api, concurrency=8).apply(writes)
    assert len(report.done) == 29 and not report.failed
    assert most[0] > 1  # independent writes of one phase overlap
    by_phase = {p: [x for x in log if x[0] == p] for p in ("taking", GIVING, "events")}
    assert max(x[3] for x in by_phase["taking"]) <= min(x[2] for x in by_phase[GIVING])  # phases in order
    assert max(x[3] for x in by_phase[GIVING]) <= min(x[2] for x in by_phase["events"])
    giving = by_phase[GIVING]
    assert [x[1] for x in giving] == [f"g{i}" for i in range(5)]  # in placement's order,
    assert all(a[3] <= b[2] for a, b in zip(giving, giving[1:]))  # and one at a time
