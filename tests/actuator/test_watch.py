"""actuator/watch.py against the sandbox API server: the Watcher's cache starts from a full list,
follows every change, lists again when a watch expires, and wakes a reconcile only when planning
would see a difference."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client

from scheduler.actuator.reads import read_snapshot
from scheduler.actuator.retry import Backoff
from scheduler.actuator.watch import Watcher
from scheduler.actuator.writes import MERGE_PATCH
from tests.keys import KEYS
from tests.sandbox.conftest import namespace, node, pod, v1_list


@pytest.fixture
def watcher(api):
    w = Watcher(api, KEYS, timeout_seconds=30)
    yield w
    w.stop()


def labelled(name: str, key: str, value: str | None):
    return lambda snap: any(n.name == name and n.labels.get(key) == value for n in snap.nodes)


def test_the_watcher_starts_from_a_full_list(server, api, real_cluster, watcher):
    server.load_list(real_cluster)
    watcher.start()
    assert watcher.snapshot() == read_snapshot(api, KEYS)[0]


def test_the_watcher_follows_node_namespace_quota_and_pod_changes(server, api, watcher):
    server.load_list(v1_list(node("a"), namespace("lg-exaone"), pod("train", "lg-exaone", "a", gpus=8)))
    watcher.start()
    core = client.CoreV1Api(api)
    core.patch_node("a", {"metadata": {"labels": {KEYS.node_state: "free"}}}, _content_type=MERGE_PATCH)
    assert watcher.wait_for(labelled("a", KEYS.node_state, "free"))
    core.create_namespaced_resource_quota("lg-exaone", {"metadata": {"name": "gpu-scheduler"},
                                                        "spec": {"hard": {"requests.nvidia.com/gpu": "8"}}})
    assert watcher.wait_for(lambda s: s.quotas == {"lg-exaone": "8"})
    core.patch_namespace("lg-exaone", {"metadata": {"labels": {KEYS.status: "active"}}}, _content_type=MERGE_PATCH)
    assert watcher.wait_for(lambda s: s.namespaces["lg-exaone"].labels.get(KEYS.status) == "active")
    core.patch_namespaced_pod_status("train", "lg-exaone", {"status": {"phase": "Succeeded"}},
                                     _content_type=MERGE_PATCH)
    assert watcher.wait_for(lambda s: s.pods == ())  # a finished pod frees its GPUs
    core.delete_node("a")
    assert watcher.wait_for(lambda s: s.nodes == ())
    assert watcher.snapshot() == read_snapshot(api, KEYS)[0]


def test_an_expired_watch_lists_again_and_carries_on(server, api, watcher):
    server.load_list(v1_list(node("a"), node("b")))
    watcher.start()
    assert server.wait_for_watchers(4)
    server.compact()
    assert server.expire_watches(["nodes"]) == 1
    core = client.CoreV1Api(api)
    core.patch_node("b", {"metadata": {"labels": {KEYS.node_state: "free"}}}, _content_type=MERGE_PATCH)
    assert watcher.wait_for(labelled("b", KEYS.node_state, "free"))
    assert watcher.relists["nodes"] == 1
    assert server.wait_for_watchers(4)
    core.patch_node("a", {"metadata": {"labels": {KEYS.node_state: "free"}}}, _content_type=MERGE_PATCH)
    assert watcher.wait_for(labelled("a", KEYS.node_state, "free"))


def test_the_watcher_calls_back_on_every_change(server, api):
    server.load_list(v1_list(node("a")))
    seen = []
    with Watcher(api, KEYS, timeout_seconds=30, on_change=lambda: seen.append(1)) as watcher:
        start = len(seen)
        client.CoreV1Api(api).patch_node("a", {"metadata": {"labels": {"x": "1"}}}, _content_type=MERGE_PATCH)
        assert watcher.wait_for(labelled("a", "x", "1"))
    assert len(seen) > start
    assert not watcher.running  # stopping ends every watch thread


def test_an_agent_heartbeat_updates_the_cache_without_waking_a_reconcile(server, api):
    """At 10,000 nodes agents write ~33 heartbeats a second: only a change of healthy GPUs wakes."""
    key = "gpu-scheduler.sovereign-ai.kr/telemetry"

    def report(stamp: str, healthy: int) -> dict:
        return {"metadata": {"annotations": {key: json.dumps(
            {"version": 1, "timestamp": stamp, "total_gpus": 8, "healthy_gpus": healthy,
             "gpus": [{"index": 0, "uuid": "GPU-0", "healthy": True, "utilization": 0.5}]})}}}

    server.load_list(v1_list(node("a")))
    core = client.CoreV1Api(api)
    core.patch_node("a", report("2026-11-30T05:00:00Z", 8), _content_type=MERGE_PATCH)
    seen = []
    with Watcher(api, KEYS, timeout_seconds=30, on_change=lambda: seen.append(1)) as watcher:
        woken = len(seen)
        core.patch_node("a", report("2026-11-30T05:05:00Z", 8), _content_type=MERGE_PATCH)
        deadline = time.monotonic() + 10
        while next(n for n in watcher.snapshot().nodes if n.name == "a").telemetry_at.minute != 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len(seen) == woken  # the heartbeat is in the cache, and woke nothing

        core.patch_node("a", report("2026-11-30T05:06:00Z", 7), _content_type=MERGE_PATCH)
        assert watcher.wait_for(lambda s: next(n for n in s.nodes if n.name == "a").healthy_gpus == 7)
        assert len(seen) > woken  # a GPU failing does wake it


def test_a_watcher_whose_first_list_fails_starts_anyway_and_lists_again(server, api):
    server.load_list(v1_list(node("a")))
    server.faults.add(verb="list", resource="nodes", sequence=[500])
    with Watcher(api, KEYS, timeout_seconds=30, backoff=Backoff(base=0.01, cap=0.05)) as watcher:
        assert watcher.errors["nodes"] == 1
        assert watcher.wait_for(lambda s: [n.name for n in s.nodes] == ["a"], timeout=10)


def test_a_cache_whose_watch_is_down_is_not_trusted_so_a_dead_api_fails_the_read(server, api):
    """With the API server gone the cache still holds the last cluster, but nothing confirms it:
    the next read lists (and fails) instead of planning on it for minutes."""
    from scheduler.actuator.retry import Transient
    from scheduler.actuator.watch import ClusterReader

    server.load_list(v1_list(node("a"), namespace("lg-exaone")))
    w = Watcher(api, KEYS, timeout_seconds=30, backoff=Backoff(base=0.05, cap=0.1)).start()
    try:
        reader = ClusterReader(api, KEYS, w)
        reader.read()
        assert reader.trusted
        reader.read()
        assert reader.reads["cache"] == 1
        server.stop()
        deadline = time.monotonic() + 20
        while not w.failing:
            assert time.monotonic() < deadline, "the watches never noticed the API server was gone"
            time.sleep(0.05)
        with pytest.raises(Transient):
            reader.read()
        assert not reader.trusted and reader.reads["cache"] == 1
    finally:
        w.stop()


def test_a_watcher_reading_a_few_labels_keeps_only_those_and_is_not_woken_by_the_others(server, api):
    """Keys.reading: nodes keep the labels planning reads (and ours); a label nobody reads changing
    wakes no reconcile; relabel() lists the nodes again with the labels a new policy reads."""
    server.load_list(v1_list(node("a", {"pool": "h100", "zone": "z1", "nvidia.com/gpu.family": "hopper"})))
    seen = []
    keys = KEYS.reading({"pool"})
    with Watcher(api, keys, timeout_seconds=30, on_change=lambda: seen.append(1)) as watcher:
        assert dict(watcher.snapshot().nodes[0].labels) == {"pool": "h100"}
        listed = len(seen)
        core = client.CoreV1Api(api)
        core.patch_node("a", {"metadata": {"labels": {"nvidia.com/gpu.family": "blackwell"}}}, _content_type=MERGE_PATCH)
        core.patch_node("a", {"metadata": {"labels": {"pool": "b200"}}}, _content_type=MERGE_PATCH)
        assert watcher.wait_for(labelled("a", "pool", "b200"))
        assert len(seen) - listed == 1  # the pool label; not the GPU family nobody reads (sent first)
        watcher.relabel(KEYS.reading({"pool", "zone"}))
        assert dict(watcher.snapshot().nodes[0].labels) == {"pool": "b200", "zone": "z1"}
