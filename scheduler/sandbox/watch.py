"""Watches: newline-delimited JSON events over a chunked response.

Starts from a resourceVersion (replaying the bounded history; too old gives an ERROR event with
a 410 Expired Status, as kube-apiserver's watch cache answers) or, without one, from the current
objects as ADDED. A label or field selector turns an object that starts matching into ADDED and
one that stops matching into DELETED (carrying its previous content, as the watch cache does).
Ends at timeoutSeconds; BOOKMARK events when allowWatchBookmarks=true; sendInitialEvents=true
ends the initial ADDED events with the `k8s.io/initial-events-end` bookmark.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

from scheduler.sandbox import render
from scheduler.sandbox.admission import utc_now
from scheduler.sandbox.errors import ApiError, bad_request, expired
from scheduler.sandbox.media import Negotiated, negotiate
from scheduler.sandbox.protocol import Context, Request, Response
from scheduler.sandbox.reads import include_object, request_filter
from scheduler.sandbox.resources import ResourceType
from scheduler.sandbox.routing import Target
from scheduler.sandbox.selectors import Filter
from scheduler.sandbox.store import (
    ADDED,
    DELETED,
    MODIFIED,
    Change,
    Signal,
    Stored,
    Subscription,
    body_of,
    encode,
    stamp,
)

DEFAULT_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def line(type_: str, obj_bytes: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + obj_bytes + b"}\n"


def expired_event(message: str = "The resourceVersion for the provided watch is too old.") -> bytes:
    return line("ERROR", encode(expired(message).status()))


def visible(change: Change, flt: Filter) -> tuple[str, Stored] | None:
    """What a watcher with this filter sees of a change, if anything."""
    if change.type == ADDED:
        return (ADDED, change.new) if flt.matches(change.new.obj) else None
    if change.type == DELETED:
        return (DELETED, change.new) if flt.matches(change.new.obj) else None
    now = flt.matches(change.new.obj)
    before = change.old is not None and flt.matches(change.old.obj)
    if now:
        return (MODIFIED if before else ADDED), change.new
    if before:
        assert change.old is not None
        gone = stamp(change.old.obj, change.rv)
        return DELETED, Stored(gone, body_of(gone), change.rv)
    return None


def _since(req: Request) -> int | None:
    text = req.query.get("resourceVersion", "")
    if text in ("", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"invalid resource version: {text!r}") from None


def _timeout(req: Request) -> float:
    text = req.query.get("timeoutSeconds", "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise bad_request(f"timeoutSeconds must be a number, not {text!r}") from None


class _Renderer:
    def __init__(self, ctx: Context, rtype: ResourceType, how: Negotiated, include: str) -> None:
        self.ctx, self.rtype, self.how, self.include = ctx, rtype, how, include
        self.first = True

    def event(self, type_: str, stored: Stored) -> bytes:
        if self.how.form != "table":
            return line(type_, render.object_bytes(self.rtype, stored))
        table = render.table_obj(
            self.rtype,
            [stored],
            {"resourceVersion": str(stored.rv)},
            utc_now(self.ctx.clock),
            self.include,
            self.how.version,
            with_columns=self.first,
        )
        self.first = False
        return line(type_, encode(table))

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return line(
            "BOOKMARK", encode({"kind": self.rtype.kind, "apiVersion": self.rtype.api_version, "metadata": meta})
        )


def watch(ctx: Context, target: Target, req: Request, expire: bool = False) -> Response:
    """The watch response; `expire`: an injected 410, the stream is a single ERROR event."""
    rtype = target.rtype
    how = negotiate(req.header("Accept"), allow_table=True)
    flt = request_filter(target, req)
    since = _since(req)
    timeout = _timeout(req)
    bookmarks = req.flag("allowWatchBookmarks")
    send_initial = req.flag("sendInitialEvents")
    if send_initial and not bookmarks:
        raise bad_request("sendInitialEvents requires allowWatchBookmarks=true")
    renderer = _Renderer(ctx, rtype, how, include_object(req))
    if expire:
        return Response(200, stream=iter([expired_event()]))
    try:
        sub = ctx.store.subscribe(rtype.store_key, None if send_initial else since)
    except ApiError as e:
        return Response(200, stream=iter([line("ERROR", encode(e.status()))]))
    return Response(200, stream=_events(ctx, sub, flt, renderer, timeout, bookmarks, send_initial))


def _events(
    ctx: Context,
    sub: Subscription,
    flt: Filter,
    renderer: _Renderer,
    timeout: float,
    bookmarks: bool,
    send_initial: bool,
) -> Iterator[bytes]:
    try:
        deadline = time.monotonic() + timeout
        for change in sub.initial:
            seen = visible(change, flt)
            if seen:
                yield renderer.event(*seen)
        if send_initial:
            yield renderer.bookmark(sub.rv, initial_end=True)
        next_bookmark = time.monotonic() + ctx.bookmark_interval
        while not ctx.stopping.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            wait = min(deadline - now, ctx.poll_interval)
            if bookmarks:
                wait = min(wait, max(next_bookmark - now, 0.0))
            try:
                item = sub.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item == Signal.STOP:
                return
            if item == Signal.EXPIRE:
                yield expired_event()
                return
            if isinstance(item, Change):
                seen = visible(item, flt)
                if seen:
                    yield renderer.event(*seen)
                continue
            if bookmarks and time.monotonic() >= next_bookmark:
                rv = ctx.store.quiet_rv(sub)
                if rv is not None:
                    yield renderer.bookmark(rv)
                    next_bookmark = time.monotonic() + ctx.bookmark_interval
                    continue
            yield b""  # a tick: lets the transport notice a client that went away
        if bookmarks and not ctx.stopping.is_set():
            rv = ctx.store.quiet_rv(sub)
            if rv is not None:
                yield renderer.bookmark(rv)
    finally:
        ctx.store.unsubscribe(sub)
