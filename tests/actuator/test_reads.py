"""actuator/reads.py against the sandbox API server, over HTTP, with the official client: one
consistent read of the cluster, decoded to the same Snapshot as the same list read from a file."""

from __future__ import annotations

import time

import pytest

from scheduler.actuator.connect import connect
from scheduler.actuator.reads import read_snapshot
from scheduler.actuator.retry import Transient
from scheduler.cluster import decode_snapshot
from scheduler.cluster.synthetic import dumps
from scheduler.sandbox import SandboxServer
from scheduler.sandbox.faults import Fault
from tests.keys import KEYS
from tests.sandbox.conftest import namespace, node, pod, v1_list


def test_read_snapshot_equals_decoding_the_same_list(real_cluster, tmp_path):
    with SandboxServer(port=0, builtin_namespaces=False) as server:
        server.load_list(real_cluster)
        with connect(str(server.write_kubeconfig(tmp_path / "kubeconfig"))) as api:
            snapshot, rv = read_snapshot(api, KEYS)
    assert snapshot == decode_snapshot(dumps(real_cluster), KEYS)
    assert rv and int(rv) > 0


def test_read_snapshot_keeps_gpu_pods_and_our_quota_only(server, api):
    server.load_list(v1_list(
        node("b200-0001"), namespace("lg-exaone"),
        pod("train", "lg-exaone", "b200-0001", gpus=8), pod("web", "lg-exaone", "b200-0001"),
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone"},
         "spec": {"hard": {"requests.nvidia.com/gpu": "64"}}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "cpu", "namespace": "lg-exaone"},
         "spec": {"hard": {"requests.cpu": "64"}}}))
    snapshot, _ = read_snapshot(api, KEYS)
    assert [(p.name, p.gpus) for p in snapshot.pods] == [("train", 8)]
    assert snapshot.quotas == {"lg-exaone": "64"}


def test_a_throttled_read_fails_fast_with_its_retry_after_instead_of_sleeping_in_the_http_library(server, api):
    """urllib3 would retry a 429 GET itself, sleeping the server's Retry-After uncapped; the
    daemon's own retry rules (capped, jittered) must be the only ones."""
    server.load_list(v1_list(node("a")))
    server.faults.add(verb="list", resource="nodes", sequence=[Fault(429, retry_after=30)])
    began = time.monotonic()
    with pytest.raises(Transient) as failure:
        read_snapshot(api, KEYS)
    assert time.monotonic() - began < 20  # not the 30 s the server asked for
    assert failure.value.status == 429 and failure.value.retry_after == 30
    assert read_snapshot(api, KEYS)[0].nodes[0].name == "a"  # the next read goes through


def test_lists_are_read_in_pages_and_come_out_as_one_list(server, api):
    """Like client-go's reflector, the reader asks for pages (limit, continue): a fleet's list
    never sits in memory whole, and the pages add up to the list read at once."""
    from scheduler.actuator.reads import list_decoded, list_pages

    server.load_list(v1_list(*(node(f"b200-{i:04d}") for i in range(7)), namespace("lg-exaone")))
    pages = list(list_pages(api, "nodes", page=3))
    assert len(pages) == 3
    assert len({rv for _, rv in pages}) == 1  # every page of one list reports its resourceVersion
    whole, rv = list_decoded(api, "nodes", KEYS, page=1000)
    paged, paged_rv = list_decoded(api, "nodes", KEYS, page=3)
    assert [n.name for n in paged.nodes] == [f"b200-{i:04d}" for i in range(7)]
    assert paged == whole and paged_rv == rv


def test_a_continue_token_that_expires_midway_fails_the_read_and_the_next_read_starts_over(server, api):
    from scheduler.actuator import reads

    server.load_list(v1_list(*(node(f"b200-{i:04d}") for i in range(1200))))
    server.faults.add(verb="list", resource="nodes", sequence=[None, 410])
    with pytest.raises(Transient) as failure:
        read_snapshot(api, KEYS)
    assert failure.value.status == 410
    assert len(read_snapshot(api, KEYS)[0].nodes) == 1200 > reads.PAGE
