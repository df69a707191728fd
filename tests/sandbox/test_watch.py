"""Watches as kubernetes.watch.Watch and raw HTTP clients see them: replay, timeouts, 410,
selector transitions, bookmarks."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox import SandboxServer

from .conftest import CONSORTIUM, api_client_for, node


def events(stream, n: int, w: watch.Watch) -> list[tuple[str, str, dict]]:
    out = []
    for ev in stream:
        obj = ev["raw_object"]
        out.append((ev["type"], obj["metadata"].get("name", ""), obj))
        if len(out) == n:
            w.stop()
    return out


class Background:
    """A watch consumed on a thread, its events on a queue: the test writes, then reads."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self.events: queue.Queue[Any] = queue.Queue()
        self.error: BaseException | None = None
        self.watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self._thread.start()

    def _run(self, start: Callable[[watch.Watch], Any]) -> None:
        try:
            for ev in start(self.watch):
                self.events.put((ev["type"], ev["raw_object"]))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            self.events.put(None)

    def next(self, timeout: float = 5.0) -> tuple[str, dict] | None:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.watch.stop()
        self._thread.join(timeout=5)


def test_watch_replays_changes_after_a_resource_version(core):
    start = core.create_node(node("n1")).metadata.resource_version
    core.create_node(node("n2"))
    core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    core.delete_node("n2")
    w = watch.Watch()
    got = events(w.stream(core.list_node, resource_version=start, timeout_seconds=10), 3, w)
    assert [(t, n) for t, n, _ in got] == [("ADDED", "n2"), ("MODIFIED", "n1"), ("DELETED", "n2")]
    assert got[1][2]["metadata"]["labels"] == {"a": "b"}
    versions = [int(o["metadata"]["resourceVersion"]) for _, _, o in got]
    assert versions == sorted(versions) and versions[0] > int(start)


def test_watch_without_a_resource_version_starts_with_every_object_as_added(core):
    core.create_node(node("n2"))
    core.create_node(node("n1"))
    w = watch.Watch()
    got = events(w.stream(core.list_node, timeout_seconds=10), 2, w)
    assert [(t, n) for t, n, _ in got] == [("ADDED", "n1"), ("ADDED", "n2")]


def test_timeout_seconds_ends_the_stream(core):
    rv = core.list_node().metadata.resource_version
    began = time.monotonic()
    got = list(watch.Watch().stream(core.list_node, resource_version=rv, timeout_seconds=1))
    took = time.monotonic() - began
    assert got == [] and 0.9 <= took < 30  # the server ended it at timeoutSeconds=1, not the client


def test_a_too_old_resource_version_raises_410_from_kubernetes_watch(api):
    from kubernetes import client

    with SandboxServer(history_limit=3) as small:
        core = client.CoreV1Api(api)
        core.api_client.configuration.host = small.url
        first = core.create_node(node("n0")).metadata.resource_version
        for i in range(1, 6):
            core.create_node(node(f"n{i}"))
        with pytest.raises(ApiException) as e:
            list(watch.Watch().stream(core.list_node, resource_version=first, timeout_seconds=5))
        assert e.value.status == 410
        assert "Expired: too old resource version" in e.value.reason


def test_the_410_is_an_error_event_in_a_200_stream(server):
    server.put(node("n1"))
    old = server.resource_version
    server.put(node("n2"))
    server.compact()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", f"/api/v1/nodes?watch=1&resourceVersion={old}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    event = json.loads(resp.readline())
    conn.close()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"] == f"too old resource version: {old} ({server.resource_version + 1})"


def test_label_selector_transitions_arrive_as_added_and_deleted(core, server):
    rv = core.list_node().metadata.resource_version
    bg = Background(lambda w: w.stream(core.list_node, label_selector=f"{CONSORTIUM}=lg",
                                       resource_version=rv, timeout_seconds=30))
    try:
        assert server.wait_for_watchers(1, "nodes")
        core.create_node(node("n1", {CONSORTIUM: "lg"}))
        core.create_node(node("other", {CONSORTIUM: "skt"}))
        core.patch_node("n1", {"metadata": {"labels": {CONSORTIUM: "skt"}}})
        core.patch_node("n1", {"metadata": {"labels": {"x": "y"}}})  # not matching before or after
        core.patch_node("n1", {"metadata": {"labels": {CONSORTIUM: "lg"}}})
        core.patch_node("n1", {"metadata": {"labels": {"x": "z"}}})
        core.delete_node("n1")
        seen = [bg.next() for _ in range(5)]
    finally:
        bg.close()
    assert [(t, o["metadata"]["name"]) for t, o in seen] == [
        ("ADDED", "n1"), ("DELETED", "n1"), ("ADDED", "n1"), ("MODIFIED", "n1"), ("DELETED", "n1")]
    gone = seen[1][1]
    assert gone["metadata"]["labels"][CONSORTIUM] == "lg"  # the last state that matched
    assert int(gone["metadata"]["resourceVersion"]) > int(seen[0][1]["metadata"]["resourceVersion"])


def test_field_selector_on_metadata_name(core, server):
    rv = core.list_node().metadata.resource_version
    bg = Background(lambda w: w.stream(core.list_node, field_selector="metadata.name=n2",
                                       resource_version=rv, timeout_seconds=30))
    try:
        assert server.wait_for_watchers(1, "nodes")
        for name in ("n1", "n2", "n3"):
            core.create_node(node(name))
        first = bg.next()
        core.delete_node("n2")
        second = bg.next()
    finally:
        bg.close()
    assert (first[0], first[1]["metadata"]["name"]) == ("ADDED", "n2")
    assert second[0] == "DELETED"


def test_watch_in_one_namespace_sees_only_it(core, server):
    core.create_namespace({"metadata": {"name": "lg"}})
    rv = server.resource_version
    bg = Background(lambda w: w.stream(core.list_namespaced_resource_quota, "lg",
                                       resource_version=str(rv), timeout_seconds=30))
    try:
        assert server.wait_for_watchers(1, "resourcequotas")
        quota = {"metadata": {"name": "gpu-scheduler"}, "spec": {"hard": {"requests.nvidia.com/gpu": "8"}}}
        core.create_namespaced_resource_quota("default", quota)
        core.create_namespaced_resource_quota("lg", quota)
        typ, obj = bg.next()
    finally:
        bg.close()
    assert (typ, obj["metadata"]["namespace"]) == ("ADDED", "lg")


def test_bookmarks_carry_the_current_resource_version(kubeconfig):
    from kubernetes import client

    with SandboxServer(bookmark_interval=0.2) as srv, api_client_for(kubeconfig) as api:
        api.configuration.host = srv.url
        core = client.CoreV1Api(api)
        core.create_node(node("n1"))
        w = watch.Watch()
        for ev in w.stream(core.list_node, resource_version=str(srv.resource_version),
                           allow_watch_bookmarks=True, timeout_seconds=10):
            assert ev["type"] == "BOOKMARK"
            assert ev["raw_object"]["metadata"]["resourceVersion"] == str(srv.resource_version)
            w.stop()
        assert w.resource_version == str(srv.resource_version)


def test_send_initial_events_ends_with_the_initial_events_end_bookmark(server):
    server.put(node("n1"))
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/api/v1/nodes?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=5")
    resp = conn.getresponse()
    first, second = json.loads(resp.readline()), json.loads(resp.readline())
    conn.close()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "n1")
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_expire_watches_ends_open_watches_with_410(core, server):
    rv = core.list_node().metadata.resource_version
    bg = Background(lambda w: w.stream(core.list_node, resource_version=rv, timeout_seconds=30))
    assert server.wait_for_watchers(1, "nodes")
    assert server.expire_watches(["nodes"]) == 1
    assert bg.next() is None
    bg.close()
    assert isinstance(bg.error, ApiException) and bg.error.status == 410


def test_stopping_the_server_ends_open_watches(kubeconfig):
    from kubernetes import client

    srv = SandboxServer().start()
    with api_client_for(kubeconfig) as api:
        api.configuration.host = srv.url
        core = client.CoreV1Api(api)
        bg = Background(lambda w: w.stream(core.list_node, timeout_seconds=60))
        assert srv.wait_for_watchers(1, "nodes")
        srv.stop()
        assert bg.next(timeout=10) is None
        bg.close()


def test_a_client_that_goes_away_releases_its_watch(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/api/v1/nodes?watch=1&resourceVersion=1")
    resp = conn.getresponse()
    assert resp.status == 200 and server.wait_for_watchers(1, "nodes")
    conn.close()
    resp.close()
    assert server.store.wait_for_watchers_below(1, "nodes", timeout=10)


def test_watch_events_are_newline_delimited_json_with_full_objects(server):
    rv = server.resource_version
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", f"/api/v1/nodes?watch=1&resourceVersion={rv}&timeoutSeconds=5")
    resp = conn.getresponse()
    assert server.wait_for_watchers(1, "nodes")
    server.put(node("n1"))
    line = resp.readline()
    conn.close()
    assert line.endswith(b"}\n")
    event = json.loads(line)
    assert event["type"] == "ADDED"
    assert event["object"]["kind"] == "Node" and event["object"]["apiVersion"] == "v1"


def test_watch_in_table_form_for_kubectl_get_watch(server):
    server.put(node("n1"))
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/api/v1/nodes?watch=1&timeoutSeconds=5",
                 headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    event = json.loads(conn.getresponse().readline())
    conn.close()
    table = event["object"]
    assert table["kind"] == "Table" and table["rows"][0]["cells"][0] == "n1"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Status", "Roles", "Age", "Version"]
