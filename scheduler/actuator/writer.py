"""Sending a plan's Writes to the API server, with retries; one failed write never stops the others."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
from kubernetes import client

from scheduler.actuator.connect import FIELD_MANAGER, REQUEST_TIMEOUT, WRITE_CONCURRENCY
from scheduler.actuator.reads import raw
from scheduler.actuator.retry import AlreadyExists, Backoff, Conflict, NotFound, Transient, classify
from scheduler.actuator.writes import GIVING, MERGE_PATCH, Write, dumps
from scheduler.wire import quota

log = logging.getLogger(__name__)


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
        return (
            f"{len(self.done)} writes done ({sum(self.writes.values())} requests), {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped, {sum(self.retries.values())} retries"
        )


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

    def __init__(
        self,
        api: client.ApiClient,
        dry_run: bool = False,
        *,
        counters: MutableMapping[tuple[str, str], int] | None = None,
        retries: MutableMapping[tuple[str, str], int] | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
        concurrency: int = WRITE_CONCURRENCY,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self.dry = dry_run
        self.counters = counters if counters is not None else Counter()
        self.retries = retries if retries is not None else Counter()
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.timeout = request_timeout

    def apply(
        self,
        writes: Iterable[Write],
        still_allowed: Callable[[], bool] = lambda: True,
        failed_before: Iterable[str] = (),
    ) -> WriteReport:
        """Perform the writes in order. `still_allowed` is asked before each one: a replica that
        loses the Lease part-way through a long batch stops writing at once (the rest is skipped).

        Writes of one phase (`Write.phase`, set by desired_writes: independent objects) go out
        up to `concurrency` at a time, since a real API server spends milliseconds on each and a
        cold start writes every node; phases stay in order. Nodes given out are sent one by one,
        in placement's order, so a batch cut short is always a prefix of the plan.

        `failed_before`: keys of writes that failed in an earlier part of the same batch (a batch
        sent in parts: an Event here does not report a change that did not happen)."""
        report = WriteReport()
        failed_keys: set[str] = set(failed_before)
        for phase, run in itertools.groupby(writes, key=lambda w: w.phase):
            group = list(run)
            if self.concurrency > 1 and phase and phase != GIVING and len(group) > 1 and not self.dry:
                with ThreadPoolExecutor(
                    max_workers=min(self.concurrency, len(group)), thread_name_prefix="write"
                ) as pool:
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
            log.info(
                "dry-run: would %s %s %s: %s",
                w.verb,
                w.resource,
                f"{w.namespace}/{w.name}" if w.namespace else w.name,
                dumps(w),
            )
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
            except Exception as exc:
                failure = classify(exc, w.verb)
                if failure is None:
                    raise
            if isinstance(failure, AlreadyExists) and w.verb == "create":
                if w.resource == "resourcequotas":
                    w = _quota_patch(w)  # it exists: set its value instead
                elif w.resource == "events" and self._event_exists(w):
                    return None  # recorded by an earlier try of this reconcile
                elif w.resource == "namespaces":
                    return None  # someone made it meanwhile: what the create wanted
            elif isinstance(failure, NotFound):
                if w.resource == "pods/eviction":
                    return None  # the pod is gone already: what the eviction wanted
                if w.resource == "resourcequotas" and w.verb == "patch":
                    w = _quota_create(w)  # deleted since the snapshot: create it again
                else:
                    return str(failure)
            elif not isinstance(failure, (Conflict, Transient)):
                return str(failure)
            attempt += 1
            if attempt >= self.backoff.attempts:
                what = (
                    " (a PodDisruptionBudget refuses it)"
                    if w.resource == "pods/eviction" and failure.status == 429
                    else ""
                )
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
            raw(core.patch_node, w.name, body, _content_type=MERGE_PATCH, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "namespaces" and w.verb == "patch":
            raw(core.patch_namespace, w.name, body, _content_type=MERGE_PATCH, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "namespaces" and w.verb == "create":  # --create-namespaces
            raw(core.create_namespace, body, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "resourcequotas" and w.verb == "patch":
            raw(
                core.patch_namespaced_resource_quota,
                w.name,
                w.namespace,
                body,
                _content_type=MERGE_PATCH,
                field_manager=FIELD_MANAGER,
                **kw,
            )
        elif w.resource == "resourcequotas" and w.verb == "create":
            raw(core.create_namespaced_resource_quota, w.namespace, body, field_manager=FIELD_MANAGER, **kw)
        elif w.resource == "pods/eviction" and w.verb == "evict":
            eviction = client.V1Eviction(
                api_version="policy/v1",
                kind="Eviction",
                metadata=client.V1ObjectMeta(name=w.name, namespace=w.namespace),
            )
            raw(core.create_namespaced_pod_eviction, w.name, w.namespace, eviction, **kw)
        elif w.resource == "events" and w.verb == "create":
            raw(core.create_namespaced_event, w.namespace, body, field_manager=FIELD_MANAGER, **kw)
        else:
            raise ValueError(f"the writer cannot {w.verb} {w.resource}")

    def _rebase_taints(self, w: Write) -> dict[str, Any]:
        """The patch with `spec.taints` rebuilt on the live node: its foreign taints exactly as
        they are now (timeAdded included), then ours, guarded by the node's resourceVersion so
        a taint added meanwhile gives a 409 and a fresh try rather than being lost."""
        live = msgspec.json.decode(raw(self.core.read_node, w.name, _request_timeout=self.timeout), type=_LiveNode)
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
            raw(self.core.read_namespaced_event, w.name, w.namespace, _request_timeout=self.timeout)
            return True
        except Exception as exc:
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
    """A quota create that found the object there: set its value instead."""
    return replace(w, verb="patch", body=quota.encode_patch(quota.decode(w.body) or "0"), content_type=MERGE_PATCH)


def _quota_create(w: Write) -> Write:
    """A quota patch that found the object gone: create it again, whole."""
    return replace(w, verb="create", body=quota.encode(w.namespace, quota.decode(w.body) or "0"), content_type="")
