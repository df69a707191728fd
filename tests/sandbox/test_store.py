"""The store on its own: one increasing resourceVersion under concurrent writers, a bounded
history, and subscriptions that miss nothing between replay and live changes."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.store import ADDED, DELETED, MODIFIED, Change, Store

from .conftest import node


def obj(name: str, **labels: str) -> dict:
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "labels": labels}}


def test_every_write_gets_the_next_resource_version():
    store = Store()
    a = store.put("nodes", obj("a"))
    b = store.put("nodes", obj("b"))
    gone = store.remove("nodes", ("", "a"))
    assert (a.rv, b.rv, gone.rv) == (1, 2, 3)
    assert gone.obj["metadata"]["resourceVersion"] == "3"
    assert store.remove("nodes", ("", "a")) is None


def test_concurrent_writers_never_share_a_resource_version():
    store = Store()
    seen: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(200):
            rv = store.put("nodes", obj(f"n{k}-{i}")).rv
            with lock:
                seen.append(rv)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 1601))
    assert store.count("nodes") == 1600


def test_history_is_bounded_and_older_versions_are_expired():
    store = Store(history_limit=3)
    for i in range(6):
        store.put("nodes", obj(f"n{i}"))
    with pytest.raises(ApiError) as e:
        store.subscribe("nodes", 1)
    assert e.value.code == 410 and e.value.message == "too old resource version: 1 (4)"
    sub = store.subscribe("nodes", 3)
    assert [c.rv for c in sub.initial] == [4, 5, 6]


def test_compact_expires_every_older_version():
    store = Store()
    store.put("nodes", obj("a"))
    store.put("pods", {**obj("p"), "kind": "Pod"})
    rv = store.compact()
    assert store.subscribe("nodes", rv).initial == []
    with pytest.raises(ApiError):
        store.subscribe("nodes", rv - 1)


def test_a_subscription_misses_nothing_while_writers_run():
    store = Store()
    for i in range(50):
        store.put("nodes", obj(f"n{i}"))
    done = threading.Event()

    def churn() -> None:
        i = 0
        while not done.is_set():
            store.put("nodes", obj(f"n{i % 50}", v=str(i)))
            i += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        sub = store.subscribe("nodes", 25)
        changes = list(sub.initial)
        while len(changes) < 500:
            item = sub.queue.get(timeout=5)
            assert isinstance(item, Change)
            changes.append(item)
    finally:
        done.set()
        writer.join()
    assert [c.rv for c in changes] == list(range(26, 26 + len(changes)))
    assert {c.type for c in changes} <= {ADDED, MODIFIED, DELETED}


def test_conflicting_updates_through_the_api_serialize(core, server):
    core.create_node(node("n1", {"count": "0"}))

    def bump() -> None:
        for _ in range(10):
            while True:
                current = core.read_node("n1")
                current.metadata.labels["count"] = str(int(current.metadata.labels["count"]) + 1)
                try:
                    core.replace_node("n1", current)
                    break
                except ApiException as e:
                    assert e.status == 409

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.get("nodes", "n1")["metadata"]["labels"]["count"] == "40"
