"""The object store: one global resourceVersion, per-storage objects, a bounded change history
per storage for watch replay, and the open watch subscriptions.

Objects are kept as `Stored` records: the decoded dict (never mutated after it is stored) and its
JSON encoding without `kind`/`apiVersion` (what a list item looks like), so that a list of 10,000
nodes is a join of ready bytes. Every change happens under one lock, which also makes the
read-modify-write of an update or a patch atomic. Watchers receive changes through their own
queue, fed under the same lock, so no change is missed between the replay and the live stream.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from scheduler.sandbox.errors import too_old

_encoder = msgspec.json.Encoder()
encode = _encoder.encode
decode = msgspec.json.decode

Key = tuple[str, str]  # (namespace or "", name)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


def body_of(obj: dict[str, Any]) -> bytes:
    """The JSON of an object without its kind and apiVersion (they are added per response)."""
    return encode({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})


@dataclass(frozen=True, slots=True)
class Stored:
    obj: dict[str, Any]
    body: bytes
    rv: int

    @property
    def key(self) -> Key:
        meta = self.obj["metadata"]
        return meta.get("namespace", ""), meta["name"]

    def copy(self) -> dict[str, Any]:
        """A private, mutable copy of the object (without kind and apiVersion)."""
        obj: dict[str, Any] = decode(self.body)  # a body is always the encoding of an object
        return obj


@dataclass(frozen=True, slots=True)
class Change:
    type: str
    rv: int
    new: Stored  # for DELETED: the last state, stamped with the deletion's resourceVersion
    old: Stored | None


class Signal:
    STOP = "stop"
    EXPIRE = "expire"


@dataclass(eq=False)
class Subscription:
    storage: str
    initial: list[Change]
    rv: int  # the resourceVersion when it started: initial events are as of this version
    queue: queue.SimpleQueue[Change | str] = field(default_factory=queue.SimpleQueue)


def stamp(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(rv)
    out = dict(obj)
    out["metadata"] = meta
    return out


class Store:
    def __init__(self, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self.history_limit = history_limit
        self._rv = 0
        self._objects: dict[str, dict[Key, Stored]] = {}
        self._history: dict[str, deque[Change]] = {}
        self._compacted: dict[str, int] = {}  # highest resourceVersion dropped from history
        self._subs: dict[str, set[Subscription]] = {}
        self._subs_changed = threading.Condition(self.lock)

    # -- reads ------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, storage: str, key: Key) -> Stored | None:
        return self._objects.get(storage, {}).get(key)

    def list(self, storage: str, namespace: str | None = None) -> tuple[int, list[Stored]]:
        """(current resourceVersion, objects sorted by namespace and name)."""
        with self.lock:
            items = self._objects.get(storage, {})
            if namespace is None:
                keys = sorted(items)
            else:
                keys = sorted(k for k in items if k[0] == namespace)
            return self._rv, [items[k] for k in keys]

    def count(self, storage: str) -> int:
        return len(self._objects.get(storage, {}))

    # -- writes (callers hold self.lock for read-modify-write) -------------------------------
    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv

    def put(self, storage: str, obj: dict[str, Any]) -> Stored:
        """Create or replace `obj`, stamping a new resourceVersion; notifies watchers."""
        with self.lock:
            rv = self.next_rv()
            obj = stamp(obj, rv)
            new = Stored(obj, body_of(obj), rv)
            bucket = self._objects.setdefault(storage, {})
            old = bucket.get(new.key)
            bucket[new.key] = new
            self._record(storage, Change(MODIFIED if old else ADDED, rv, new, old))
            return new

    def remove(self, storage: str, key: Key) -> Stored | None:
        with self.lock:
            old = self._objects.get(storage, {}).pop(key, None)
            if old is None:
                return None
            rv = self.next_rv()
            gone_obj = stamp(old.obj, rv)
            gone = Stored(gone_obj, body_of(gone_obj), rv)
            self._record(storage, Change(DELETED, rv, gone, old))
            return gone

    def _record(self, storage: str, change: Change) -> None:
        hist = self._history.setdefault(storage, deque())
        hist.append(change)
        while len(hist) > self.history_limit:
            dropped = hist.popleft()
            self._compacted[storage] = dropped.rv
        for sub in self._subs.get(storage, ()):
            sub.queue.put(change)
        self._subs_changed.notify_all()

    def compact(self) -> int:
        """Forget all history, as etcd compaction does: older watches then get 410 Gone."""
        with self.lock:
            for storage, hist in self._history.items():
                if hist:
                    self._compacted[storage] = hist[-1].rv
                hist.clear()
            for storage in self._objects:
                self._compacted[storage] = self._rv
            return self._rv

    # -- watches ----------------------------------------------------------------------------
    def subscribe(self, storage: str, since: int | None) -> Subscription:
        """Changes after resourceVersion `since` (or, with None, the current objects as ADDED)
        and then every later change. Raises 410 Expired when `since` is older than the history."""
        with self.lock:
            if since is None:
                _, items = self.list(storage)
                initial = [Change(ADDED, s.rv, s, None) for s in items]
            else:
                compacted = self._compacted.get(storage, 0)
                if since < compacted:
                    raise too_old(since, compacted + 1)
                initial = [c for c in self._history.get(storage, ()) if c.rv > since]
            sub = Subscription(storage, initial, self._rv)
            self._subs.setdefault(storage, set()).add(sub)
            self._subs_changed.notify_all()
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            self._subs.get(sub.storage, set()).discard(sub)
            self._subs_changed.notify_all()

    def signal(self, signal: str, storages: Iterable[str] | None = None) -> int:
        """Send STOP or EXPIRE to open watches (all, or those on `storages`); returns how many."""
        with self.lock:
            n = 0
            for storage, subs in self._subs.items():
                if storages is None or storage in storages:
                    for sub in subs:
                        sub.queue.put(signal)
                        n += 1
            return n

    def quiet_rv(self, sub: Subscription) -> int | None:
        """The current resourceVersion if `sub` has nothing left to receive (a bookmark may say
        it), else None."""
        with self.lock:
            return self._rv if sub.queue.empty() else None

    def watcher_count(self, storage: str | None = None) -> int:
        with self.lock:
            if storage is None:
                return sum(len(s) for s in self._subs.values())
            return len(self._subs.get(storage, ()))

    def wait_for_change(self, timeout: float) -> int:
        """Block until the next write (or `timeout`); returns the resourceVersion then."""
        with self._subs_changed:
            before = self._rv
            self._subs_changed.wait_for(lambda: self._rv != before, max(timeout, 0.0))
            return self._rv

    def wait_for_watchers(self, count: int, storage: str | None, timeout: float) -> bool:
        with self._subs_changed:
            return self._subs_changed.wait_for(lambda: self.watcher_count(storage) >= count, timeout)

    def wait_for_watchers_below(self, count: int, storage: str | None, timeout: float) -> bool:
        with self._subs_changed:
            return self._subs_changed.wait_for(lambda: self.watcher_count(storage) < count, timeout)
