"""The daemon's Kubernetes edge: read the cluster into a Snapshot, write a plan's Writes, and
keep a Snapshot current with list-then-watch. With retry.py, the only code that imports the client.

Responses are read raw (`_preload_content=False`) and decoded with msgspec straight into the
snapshot model (scheduler.cluster.decode): the client's model classes cost seconds and
gigabytes on 10,000 nodes of about 10 KB each, and planning needs a few fields of each.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import urllib3
from kubernetes import client, config
from kubernetes.watch import Watch

from scheduler.cluster.decode import decode_snapshot
from scheduler.cluster.labels import KEYS, RESOURCE_QUOTA_NAME, Keys
from scheduler.cluster.retry import AlreadyExists, Backoff, Conflict, NotFound, Transient, classify
from scheduler.cluster.snapshot import Snapshot
from scheduler.cluster.writes import GIVING, MERGE_PATCH, Write, dumps

log = logging.getLogger(__name__)

FIELD_MANAGER = "gpu-scheduler"
REQUEST_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds: a hung apiserver becomes a Transient failure


def connect(kubeconfig: str | None = None, in_cluster: bool = False, context: str | None = None) -> client.ApiClient:
    """An API client from a kubeconfig (default: $KUBECONFIG or ~/.kube/config) or, in a pod,
    from its service account."""
    if in_cluster:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
    else:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    # urllib3 would otherwise retry a 429/503 GET itself, sleeping its Retry-After for real and
    # uncapped, before our code sees anything: retries and their backoff are ours (retry.py)
    cfg.retries = urllib3.Retry(total=3, connect=3, read=0, status=0, other=0, redirect=0,
                                respect_retry_after_header=False, raise_on_status=False)
    return client.ApiClient(cfg)


# -- reading -------------------------------------------------------------------------------------
class _ListMeta(msgspec.Struct, frozen=True):
    resourceVersion: str = ""


class _ListHead(msgspec.Struct, frozen=True):
    metadata: _ListMeta = _ListMeta()


_LIST_HEAD = msgspec.json.Decoder(_ListHead)

# the four lists planning reads, by the plural the sandbox and metrics use
_LISTS: dict[str, Callable[[client.CoreV1Api], Callable[..., Any]]] = {
    "nodes": lambda core: core.list_node,
    "namespaces": lambda core: core.list_namespace,
    "resourcequotas": lambda core: core.list_resource_quota_for_all_namespaces,
    "pods": lambda core: core.list_pod_for_all_namespaces,
}


def _raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    resp = call(*args, _preload_content=False, _request_timeout=kwargs.pop("_request_timeout", REQUEST_TIMEOUT),
                **kwargs)
    try:
        return resp.data
    finally:
        resp.release_conn()


def list_raw(api: client.ApiClient, resource: str) -> tuple[bytes, str]:
    """One list as the apiserver sent it, and its resourceVersion."""
    data = _raw(_LISTS[resource](client.CoreV1Api(api)))
    return data, _LIST_HEAD.decode(data).metadata.resourceVersion


def read_snapshot(api: client.ApiClient, keys: Keys = KEYS) -> tuple[Snapshot, str]:
    """The cluster as planning sees it, and the node list's resourceVersion. Failures are
    scheduler.cluster.retry errors (Transient: read again later; Permanent: fix the RBAC)."""
    parts: dict[str, Snapshot] = {}
    rv = ""
    for resource in _LISTS:
        try:
            data, version = list_raw(api, resource)
        except Exception as exc:
            failure = classify(exc, "list")
            if failure is None:
                raise
            raise failure from exc
        parts[resource] = decode_snapshot(data, keys)
        if resource == "nodes":
            rv = version
    return Snapshot(nodes=parts["nodes"].nodes, namespaces=parts["namespaces"].namespaces,
                    quotas=parts["resourcequotas"].quotas, pods=parts["pods"].pods), rv


# -- writing -------------------------------------------------------------------------------------
@dataclass
class WriteReport:
    """What one `Writer.apply` did. `writes` and `retries` count by (resource, verb)."""

    done: list[Write] = field(default_factory=list)
    failed: list[tuple[Write, str]] = field(default_factory=list)
    skipped: list[tuple[Write, str]] = field(default_factory=list)
    dry_run: list[Write] = field(default_factory=list)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        if self.dry_run:
            return f"dry run: {len(self.dry_run)} writes not made"
        return (f"{len(self.done)} writes done ({sum(self.writes.values())} requests), {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped, {sum(self.retries.values())} retries")


class _Gone(Exception):
    """The write has nothing left to do (the object already looks as wanted, or is gone)."""


class Writer:
    """Performs Writes with retries; one failed write never stops the others.

    409 Conflict: re-apply at once (a taint patch re-reads the node first; a merge patch
    without a resourceVersion is idempotent); on create, an existing Event is done and an
    existing ResourceQuota is patched instead. 429, 5xx, timeouts: capped exponential backoff
    with full jitter, at least the server's Retry-After (a PodDisruptionBudget refusing an
    eviction is a 429 too). Any other 4xx: the write is recorded as failed, the rest go on.

    `counters` / `retries` are cumulative (resource, verb) -> count mappings the daemon turns
    into `gpu_scheduler_api_writes_total`; pass your own to share them. `sleep` is injectable
    so tests never wait.
    """

    def __init__(self, api: client.ApiClient, dry_run: bool = False, *,
                 counters: MutableMapping[tuple[str, str], int] | None = None,
                 retries: MutableMapping[tuple[str, str], int] | None = None,
                 backoff: Backoff | None = None, sleep: Callable[[float], None] = time.sleep,
                 request_timeout: tuple[float, float] = REQUEST_TIMEOUT, concurrency: int = 8) -> None:
        self.core = client.CoreV1Api(api)
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self.dry = dry_run
        self.counters = counters if counters is not None else Counter()
        self.retries = retries if retries is not None else Counter()
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.timeout = request_timeout

    def apply(self, writes: Iterable[Write], still_allowed: Callable[[], bool] = lambda: True) -> WriteReport:
        """Perform the writes in order. `still_allowed` is asked before each one: a replica that
        loses the Lease part-way through a long batch stops writing at once (the rest is skipped).

        Writes of one phase (`Write.phase`, set by desired_writes: independent objects) go out
        up to `concurrency` at a time, since a real API server spends milliseconds on each and a
        cold start writes every node; phases stay in order. Nodes given out are sent one by one,
        in placement's order, so a batch cut short is always a prefix of the plan."""
        report = WriteReport()
        failed_keys: set[str] = set()
        for phase, run in itertools.groupby(writes, key=lambda w: w.phase):
            group = list(run)
            if self.concurrency > 1 and phase and phase != GIVING and len(group) > 1 and not self.dry:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(group)),
                                        thread_name_prefix="write") as pool:
                    for _ in pool.map(lambda w: self._one(w, report, failed_keys, still_allowed), group):
                        pass
            else:
                for w in group:
                    self._one(w, report, failed_keys, still_allowed)
        return report

    def _one(self, w: Write, report: WriteReport, failed_keys: set[str], still_allowed: Callable[[], bool]) -> None:
        if not self.dry and not still_allowed():
            with self._lock:
                report.skipped.append((w, "no longer the leader"))
            return
        if self.dry:
            log.info("dry-run: would %s %s %s: %s", w.verb, w.resource,
                     f"{w.namespace}/{w.name}" if w.namespace else w.name, dumps(w))
            report.dry_run.append(w)
            return
        with self._lock:
            broken = [k for k in w.reports_on if k in failed_keys]
        if broken:
            with self._lock:
                report.skipped.append((w, f"what it reports on failed: {', '.join(broken)}"))
            return
        error = self._perform(w, report)
        with self._lock:
            if error is None:
                log.debug("%s: done (%s)", w.describe(), w.reason)
                report.done.append(w)
            else:
                failed_keys.add(w.key)
                report.failed.append((w, error))
                log.warning("%s failed: %s; skipped, the next reconcile tries again", w.describe(), error)

    # one write, with its retries ----------------------------------------------------------------
    def _perform(self, w: Write, report: WriteReport) -> str | None:
        """None when done, else why it failed."""
        attempt = 0
        while True:
            try:
                self._send(w)
                self._count(report.writes, self.counters, w)
                return None
            except _Gone:
                return None
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised if not an API error
                failure = classify(exc, w.verb)
                if failure is None:
                    raise
            if isinstance(failure, AlreadyExists) and w.verb == "create":
                if w.resource == "resourcequotas":
                    w = _quota_patch(w)  # it exists: set its value instead
                elif w.resource == "events" and self._event_exists(w):
                    return None          # recorded by an earlier try of this reconcile
            elif isinstance(failure, NotFound):
                if w.resource == "pods/eviction":
                    return None          # the pod is gone already: what the eviction wanted
                if w.resource == "resourcequotas" and w.verb == "patch":
                    w = _quota_create(w)  # deleted since the snapshot: create it again
                else:
                    return str(failure)
            elif not isinstance(failure, (Conflict, Transient)):
                return str(failure)
            attempt += 1
            if attempt >= self.backoff.attempts:
                what = " (a PodDisruptionBudget refuses it)" if w.resource == "pods/eviction" and \
                    failure.status == 429 else ""
                return f"gave up after {attempt} attempts{what}: {failure}"
            self._count(report.retries, self.retries, w)
            if isinstance(failure, Transient):
                self.sleep(self.backoff.delay(attempt - 1, failure.retry_after))

    def _count(self, batch: Counter[tuple[str, str]], total: MutableMapping[tuple[str, str], int], w: Write) -> None:
        with self._lock:
            batch[(w.resource, w.verb)] += 1
            total[(w.resource, w.verb)] = total.get((w.resource, w.verb), 0) + 1

    def _send(self, w: Write) -> None:
        core, kw = self.core, {"_request_timeout": self.timeout}
        body: Any = w.body
        if w.resource == "nodes" and w.verb == "patch":
            if w.taint_keys and "spec" in body:
                body = self._rebase_taints(w)
            _raw(core.patch_node, w.name, body, _content_type=MERGE_PATCH, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "namespaces" and w.verb == "patch":
            _raw(core.patch_namespace, w.name, body, _content_type=MERGE_PATCH, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "resourcequotas" and w.verb == "patch":
            _raw(core.patch_namespaced_resource_quota, w.name, w.namespace, body, _content_type=MERGE_PATCH,
                 field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "resourcequotas" and w.verb == "create":
            _raw(core.create_namespaced_resource_quota, w.namespace, body, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "pods/eviction" and w.verb == "evict":
            eviction = client.V1Eviction(api_version="policy/v1", kind="Eviction",
                                         metadata=client.V1ObjectMeta(name=w.name, namespace=w.namespace))
            _raw(core.create_namespaced_pod_eviction, w.name, w.namespace, eviction, **kw)
        elif w.resource == "events" and w.verb == "create":
            _raw(core.create_namespaced_event, w.namespace, body, field_manager=FIELD_MANAGER, **kw)
        else:
            raise ValueError(f"the writer cannot {w.verb} {w.resource}")

    def _rebase_taints(self, w: Write) -> dict[str, Any]:
        """The patch with `spec.taints` rebuilt on the live node: its foreign taints exactly as
        they are now (timeAdded included), then ours, guarded by the node's resourceVersion so
        a taint added meanwhile gives a 409 and a fresh try rather than being lost."""
        live = msgspec.json.decode(_raw(self.core.read_node, w.name, _request_timeout=self.timeout), type=_LiveNode)
        ours = [t for t in w.body["spec"]["taints"] if t["key"] in w.taint_keys]
        taints = [t for t in live.spec.taints if t.get("key") not in w.taint_keys] + ours
        body = {k: v for k, v in w.body.items() if k != "spec"}
        if {_taint_id(t) for t in taints} == {_taint_id(t) for t in live.spec.taints}:
            if not body:
                raise _Gone
            return body
        body["spec"] = {**w.body["spec"], "taints": taints}
        body["metadata"] = {**body.get("metadata", {}), "resourceVersion": live.metadata.resourceVersion}
        return body

    def _event_exists(self, w: Write) -> bool:
        """Whether an Event said to exist already really does (False if that cannot be read
        now: the create is then tried again, and answers for itself)."""
        try:
            _raw(self.core.read_namespaced_event, w.name, w.namespace, _request_timeout=self.timeout)
            return True
        except Exception as exc:  # noqa: BLE001
            if classify(exc, "get") is None:
                raise
            return False


class _LiveMeta(msgspec.Struct, frozen=True):
    resourceVersion: str = ""


class _LiveSpec(msgspec.Struct, frozen=True):
    taints: list[dict[str, Any]] = []


class _LiveNode(msgspec.Struct, frozen=True):
    metadata: _LiveMeta = _LiveMeta()
    spec: _LiveSpec = _LiveSpec()


def _taint_id(t: dict[str, Any]) -> tuple[str, str, str]:
    return t.get("key", ""), t.get("value", "") or "", t.get("effect", "")


def _quota_patch(w: Write) -> Write:
    return replace(w, verb="patch", body={"spec": w.body["spec"]}, content_type=MERGE_PATCH)


def _quota_create(w: Write) -> Write:
    body = {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": RESOURCE_QUOTA_NAME, "namespace": w.namespace}, "spec": w.body["spec"]}
    return replace(w, verb="create", body=body, content_type="")


# -- watching ------------------------------------------------------------------------------------
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
_LIST_KIND = {"nodes": b"NodeList", "namespaces": b"NamespaceList", "resourcequotas": b"ResourceQuotaList",
              "pods": b"PodList"}


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

    def __init__(self, api: client.ApiClient, keys: Keys = KEYS, *, timeout_seconds: int = 300,
                 on_change: Callable[[], None] | None = None, backoff: Backoff | None = None) -> None:
        self.api = api
        self.keys = keys
        self.timeout_seconds = timeout_seconds
        self.on_change = on_change
        self.backoff = backoff or Backoff()
        self.relists: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._state: dict[str, dict[tuple[str, str], Any]] = {r: {} for r in _LISTS}
        self._version = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._watches: dict[str, _RawWatch] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> Watcher:
        """List everything (so `snapshot()` is complete on return), then watch in the background."""
        versions = {resource: self._first_list(resource) for resource in _LISTS}
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
            log.warning("first list of %s failed (%s); the watch will list it again", resource, exc)
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
                w.stop()
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
                attempt = 0
                continue
            except Exception as exc:  # noqa: BLE001 - a watcher thread must outlive any one failure
                if self._stopping.is_set():
                    return
                failure = classify(exc, "watch")
            if failure is not None and failure.status == 410:
                log.info("watch of %s expired (410 Gone); listing it again", resource)
                rv = ""
                continue
            if failure is None:
                log.exception("watch of %s failed unexpectedly; listing it again", resource)
                rv = ""
            self.errors[resource] += 1
            delay = self.backoff.delay(min(attempt, 10), failure.retry_after if failure else None)
            log.warning("watch of %s failed (%s); trying again in %.1fs", resource, failure, delay)
            attempt += 1
            if self._stopping.wait(delay):
                return

    def _watch(self, resource: str, rv: str) -> str:
        """Watch from `rv` until the server ends the watch; the last version seen."""
        w = _RawWatch()
        self._watches[resource] = w
        if self._stopping.is_set():
            return rv
        func = _LISTS[resource](client.CoreV1Api(self.api))
        try:
            for event in w.stream(func, resource_version=rv, allow_watch_bookmarks=True,
                                  timeout_seconds=self.timeout_seconds,
                                  _request_timeout=(REQUEST_TIMEOUT[0], self.timeout_seconds + 30)):
                if self._stopping.is_set():
                    break
                if event["type"] != "BOOKMARK":
                    self._apply(resource, event["type"], event["object"])
                if w.resource_version:
                    rv = w.resource_version
        finally:
            self._watches.pop(resource, None)
        return rv

    def _relist(self, resource: str, again: bool = False) -> str:
        data, rv = list_raw(self.api, resource)
        decoded = decode_snapshot(data, self.keys)
        with self._cond:
            self._state[resource] = dict(_entries(resource, decoded))
            if again:
                self.relists[resource] += 1
            self._changed()
        return rv

    def _apply(self, resource: str, type_: str, raw: msgspec.Raw) -> None:
        meta = _OBJ.decode(raw).metadata
        key = (meta.namespace, meta.name)
        entries: dict[tuple[str, str], Any] = {}
        if type_ != "DELETED":
            wrapped = b'{"kind":"' + _LIST_KIND[resource] + b'","items":[' + bytes(raw) + b"]}"
            entries = dict(_entries(resource, decode_snapshot(wrapped, self.keys)))
        with self._cond:
            state = self._state[resource]
            new, old = entries.get(key), state.get(key)
            if new == old:
                return  # nothing planning reads changed (a kubelet heartbeat, a pod without GPUs)
            quiet = resource == "nodes" and new is not None and old is not None and new.settled(old, self.keys.telemetry)
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


def _entries(resource: str, snap: Snapshot) -> Iterator[tuple[tuple[str, str], Any]]:
    """The snapshot's objects of one resource, keyed by (namespace, name). A pod that is not a
    running GPU pod, or a quota other than ours, decodes to nothing (and so drops out)."""
    if resource == "nodes":
        yield from ((("", n.name), n) for n in snap.nodes)
    elif resource == "namespaces":
        yield from ((("", name), ns) for name, ns in snap.namespaces.items())
    elif resource == "resourcequotas":
        yield from (((ns, RESOURCE_QUOTA_NAME), hard) for ns, hard in snap.quotas.items())
    else:
        yield from (((p.namespace, p.name), p) for p in snap.pods)


__all__ = ["REQUEST_TIMEOUT", "WriteReport", "Watcher", "Writer", "connect", "list_raw", "read_snapshot"]
