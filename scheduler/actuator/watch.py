"""A Snapshot kept current by list-then-watch, and the rule for when a reconcile may read it
instead of listing the cluster afresh."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from kubernetes import client
from kubernetes.watch import Watch

from scheduler.actuator.connect import REQUEST_TIMEOUT
from scheduler.actuator.memory import release_freed_memory
from scheduler.actuator.reads import LIST_KINDS, LISTS, list_decoded, read_snapshot
from scheduler.actuator.retry import Backoff, classify, one_line, repeated_failure_level
from scheduler.cluster import Keys, Snapshot, decode_snapshot
from scheduler.cluster.labels import RESOURCE_QUOTA_NAME

log = logging.getLogger(__name__)

Key = str | tuple[str, str]  # a cached object's key (_key)


class _Event(msgspec.Struct, frozen=True):
    type: str
    object: msgspec.Raw


class _ObjMeta(msgspec.Struct, frozen=True):
    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""


class _Obj(msgspec.Struct, frozen=True):
    metadata: _ObjMeta = _ObjMeta()


_WATCH_EVENT = msgspec.json.Decoder(_Event)
_OBJ = msgspec.json.Decoder(_Obj)


class _RawWatch(Watch):
    """kubernetes.watch.Watch (its stream loop, stop and resourceVersion bookkeeping) with the
    objects left raw for msgspec instead of deserialized into the client's models."""

    def unmarshal_event(self, data: str, return_type: Any) -> dict[str, Any] | None:
        if not data or data.isspace():
            return None
        event = _WATCH_EVENT.decode(data)
        if event.type == "ERROR":
            status = msgspec.json.decode(event.object)
            return {"type": "ERROR", "object": status, "raw_object": status}
        rv = _OBJ.decode(event.object).metadata.resourceVersion
        if rv:
            self.resource_version = rv
        return {"type": event.type, "object": event.object}


class Watcher:
    """A Snapshot kept current by list-then-watch of nodes, namespaces, resourcequotas and pods.

    Each resource is listed once, then watched from the list's resourceVersion; a watch that
    ends (server timeout) resumes from the last version seen; 410 Gone (history compacted) means
    list again. `on_change()` is called after every change so the daemon can wake a reconcile.
    """

    def __init__(
        self,
        api: client.ApiClient,
        keys: Keys,
        *,
        timeout_seconds: int = 300,
        on_change: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.api = api
        self.keys = keys
        self.timeout_seconds = timeout_seconds
        self.on_change = on_change
        self.backoff = backoff or Backoff()
        self.relists: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # resources whose last list or watch failed and has not been seen working since: the
        # cache may be missing changes there, so a reconcile must not trust it
        self.failing: set[str] = set()
        # by name for nodes and namespaces, by (namespace, name) for the rest (_key)
        self._state: dict[str, dict[Key, Any]] = {r: {} for r in LISTS}
        self._version = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._watches: dict[str, _RawWatch] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> Watcher:
        """List everything (so `snapshot()` is complete on return), then watch in the background."""
        versions = {resource: self._first_list(resource) for resource in LISTS}
        for resource, rv in versions.items():
            t = threading.Thread(target=self._run, args=(resource, rv), name=f"watch-{resource}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _first_list(self, resource: str) -> str:
        """A failed first list is not fatal: the watch thread lists again, with backoff (and the
        reconciler trusts the cache only once it matches a fresh list)."""
        try:
            return self._relist(resource)
        except Exception as exc:  # noqa: BLE001 - any API failure: the thread retries
            log.warning("first list of %s failed (%s); the watch will list it again", resource, one_line(exc))
            self.failing.add(resource)
            self.errors[resource] += 1
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every watch and wait for the threads. A watch caught between sending its
        request and getting the answer has no socket to shut yet, so stopping is repeated
        until each thread has ended."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            for w in list(self._watches.values()):
                w.stop()  # type: ignore[no-untyped-call]  # kubernetes' Watch is unannotated
            for t in self._threads:
                t.join(0.05)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def version(self) -> int:
        """Increases with every change seen."""
        return self._version

    def snapshot(self) -> Snapshot:
        with self._cond:
            nodes = sorted(self._state["nodes"].values(), key=lambda n: n.name)
            namespaces = {ns.name: ns for ns in self._state["namespaces"].values()}
            quotas = {key[0]: hard for key, hard in self._state["resourcequotas"].items()}
            pods = sorted(self._state["pods"].values(), key=lambda p: (p.node, p.namespace, p.name))
        return Snapshot(nodes=tuple(nodes), namespaces=namespaces, quotas=quotas, pods=tuple(pods))

    def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float = 5.0) -> bool:
        """Block until the snapshot satisfies `predicate` (checked after each change) or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self.snapshot()):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    # internals ----------------------------------------------------------------------------------
    def _run(self, resource: str, rv: str) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                if not rv:
                    rv = self._relist(resource, again=True)
                rv = self._watch(resource, rv)
                self.failing.discard(resource)
                attempt = 0
                continue
            except Exception as exc:  # noqa: BLE001 - a watcher thread must outlive any one failure
                if self._stopping.is_set():
                    return
                failure = classify(exc, "watch")
                self.failing.add(resource)
            if failure is not None and failure.status == 410:
                log.info("watch of %s expired (410 Gone); listing it again", resource)
                rv = ""
                continue
            if failure is None:
                log.exception("watch of %s failed unexpectedly; listing it again", resource)
                rv = ""
            self.errors[resource] += 1
            delay = self.backoff.delay(min(attempt, 10), failure.retry_after if failure else None)
            log.log(
                repeated_failure_level(attempt),
                "watch of %s failed (%s, %d in a row); trying again in %.1fs",
                resource,
                one_line(failure) if failure else "?",
                attempt + 1,
                delay,
            )
            attempt += 1
            if self._stopping.wait(delay):
                return

    def _watch(self, resource: str, rv: str) -> str:
        """Watch from `rv` until the server ends the watch; the last version seen."""
        w = _RawWatch()  # type: ignore[no-untyped-call]  # kubernetes' Watch is unannotated
        self._watches[resource] = w
        if self._stopping.is_set():
            return rv
        func = LISTS[resource](client.CoreV1Api(self.api))
        try:
            for event in w.stream(  # type: ignore[no-untyped-call]  # kubernetes' Watch is unannotated
                func,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self.timeout_seconds,
                _request_timeout=(REQUEST_TIMEOUT[0], self.timeout_seconds + 30),
            ):
                if self._stopping.is_set():
                    break
                self.failing.discard(resource)  # the stream is up again
                if event["type"] != "BOOKMARK":
                    self._apply(resource, event["type"], event["object"])
                if w.resource_version:
                    rv = w.resource_version
        finally:
            self._watches.pop(resource, None)
        return rv

    def relabel(self, keys: Keys) -> None:
        """Decode with `keys` from now on (another set of node labels): the nodes are listed
        again, so no node in the cache lacks a label the new keys read."""
        self.keys = keys
        try:
            self._relist("nodes", again=True)
        except Exception as exc:  # noqa: BLE001 - the reconcile lists afresh meanwhile (failing)
            log.warning("listing nodes again for new label keys failed (%s)", one_line(exc))
            self.failing.add("nodes")

    def _relist(self, resource: str, again: bool = False) -> str:
        decoded, rv = list_decoded(self.api, resource, self.keys)
        self.failing.discard(resource)
        with self._cond:
            self._state[resource] = dict(_entries(resource, decoded))
            if again:
                self.relists[resource] += 1
            self._changed()
        del decoded
        release_freed_memory()  # the list's bytes and its decoding: far more than the cache keeps
        return rv

    def _apply(self, resource: str, type_: str, raw: msgspec.Raw) -> None:
        meta = _OBJ.decode(raw).metadata
        key = _key(resource, meta.namespace, meta.name)
        wrapped = (
            b""
            if type_ == "DELETED"
            else b'{"kind":"' + LIST_KINDS[resource].encode() + b'","items":[' + bytes(raw) + b"]}"
        )

        def decoded(keys: Keys) -> dict[Key, Any]:
            return dict(_entries(resource, decode_snapshot(wrapped, keys, LIST_KINDS[resource]))) if wrapped else {}

        keys = self.keys
        entries = decoded(keys)  # outside the lock: the other watches go on meanwhile
        with self._cond:
            if keys is not self.keys:  # relabelled meanwhile: decode as the keys now say
                entries = decoded(self.keys)
            state = self._state[resource]
            new, old = entries.get(key), state.get(key)
            if new == old:
                return  # nothing planning reads changed (a kubelet heartbeat, a pod without GPUs)
            quiet = (
                resource == "nodes" and new is not None and old is not None and new.settled(old, self.keys.telemetry)
            )
            state.pop(key, None)
            state.update(entries)
            if quiet:
                return  # an agent heartbeat: kept in the cache, but no reconcile woken for it
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()
        if self.on_change is not None:
            self.on_change()


def _key(resource: str, namespace: str, name: str) -> Key:
    """A cached object's key: its name for nodes and namespaces (cluster-scoped: a fleet's cache
    then keeps no key of its own per node), else (namespace, name)."""
    return name if resource in ("nodes", "namespaces") else (namespace, name)


def _entries(resource: str, snap: Snapshot) -> Iterator[tuple[Key, Any]]:
    """The snapshot's objects of one resource, keyed as _key says. A pod that is not a running
    GPU pod, or a quota other than ours, decodes to nothing (and so drops out)."""
    if resource == "nodes":
        yield from ((n.name, n) for n in snap.nodes)
    elif resource == "namespaces":
        yield from snap.namespaces.items()
    elif resource == "resourcequotas":
        yield from (((ns, RESOURCE_QUOTA_NAME), hard) for ns, hard in snap.quotas.items())
    else:
        yield from (((p.namespace, p.name), p) for p in snap.pods)


class ClusterReader:
    """The cluster now, for a reconcile: the watch cache when it can be trusted, else a fresh list.

    The cache is trusted once a fresh list, taken with none of our writes in flight, found it
    identical (agent heartbeats aside); it stops being trusted as soon as we write (`wrote()`: a
    reconcile must never act on a cache that has not seen its own writes yet) and at least every
    `resync_every` seconds. So a steady cluster costs no list at all, and the cache is used only
    when it has provably caught up with everything this replica wrote. Without a cache, every
    read is a list."""

    def __init__(
        self,
        api: client.ApiClient,
        keys: Keys,
        cache: Watcher | None = None,
        *,
        resync_every: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.keys = keys
        self.cache = cache
        self.resync_every = resync_every
        self.monotonic = monotonic
        self.reads: Counter[str] = Counter({"list": 0, "cache": 0})
        self._trusted = False
        self._listed_at = float("-inf")

    @property
    def trusted(self) -> bool:
        return self.cache is not None and self._trusted

    def read_labels(self, labels: frozenset[str]) -> None:
        """Keep at least these node labels from now on (a new policy may select on others): when
        that widens what is decoded, the cache is no longer trusted and its nodes are listed again."""
        keys = self.keys.reading(labels | (self.keys.node_labels or frozenset()))
        if self.keys.node_labels is None or keys == self.keys:
            return
        self.keys = keys
        self._trusted = False
        if self.cache is not None:
            self.cache.relabel(keys)

    def token(self) -> int | None:
        """What `read()` would return, as a number, when it would come from the cache (the cache's
        version); None when it would list. Equal tokens mean the same snapshot: a reconcile that
        planned it already can skip the read, the plan and the diff (docs/daemon.md, "At rest")."""
        if self.cache is None or self.cache.failing or not self._trusted:
            return None
        if self.monotonic() - self._listed_at >= self.resync_every:
            return None
        return self.cache.version

    def read(self) -> Snapshot:
        now = self.monotonic()
        if self.cache is not None and self.cache.failing:
            self._trusted = False  # a watch is down: what the cache says cannot be confirmed
        if self.cache is not None and self._trusted and now - self._listed_at < self.resync_every:
            self.reads["cache"] += 1
            return self.cache.snapshot()
        snapshot, _ = read_snapshot(self.api, self.keys)
        release_freed_memory()  # the lists' bytes are gone; give their pages back
        self.reads["list"] += 1
        self._listed_at = now
        self._trusted = self.cache is not None and self.cache.snapshot().same_as(snapshot, self.keys.telemetry)
        return snapshot

    def wrote(self) -> None:
        """Our writes are on their way: a fresh list must see them before the cache is trusted again."""
        self._trusted = False
