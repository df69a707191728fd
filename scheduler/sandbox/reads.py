"""GET of one object and of collections (selectors, limit/continue paging, Table)."""

from __future__ import annotations

import base64
import binascii
import json

from scheduler.sandbox import render
from scheduler.sandbox.admission import utc_now
from scheduler.sandbox.errors import bad_request, not_found
from scheduler.sandbox.media import negotiate
from scheduler.sandbox.protocol import Context, Request, Response
from scheduler.sandbox.routing import Target
from scheduler.sandbox.selectors import (
    FieldSelector,
    Filter,
    escape_field_value,
    parse_field_selector,
    parse_label_selector,
)
from scheduler.sandbox.store import Stored
from scheduler.sandbox.tables import INCLUDE_OBJECT


def include_object(req: Request) -> str:
    include = req.query.get("includeObject", "Metadata") or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise bad_request(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}")
    return include


def request_filter(target: Target, req: Request) -> Filter:
    fields = parse_field_selector(req.query.get("fieldSelector"), target.rtype)
    if target.name:  # a legacy /watch/.../NAME path watches one object
        fields = FieldSelector(
            fields.terms + parse_field_selector("metadata.name=" + escape_field_value(target.name), target.rtype).terms
        )
    return Filter(
        target.namespace if target.rtype.namespaced else None,
        parse_label_selector(req.query.get("labelSelector")),
        fields,
    )


def get(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    how = negotiate(req.header("Accept"), allow_table=True)
    stored = ctx.store.get(rtype.store_key, (target.namespace or "", target.name or ""))
    if stored is None:
        raise not_found(rtype.group, rtype.plural, target.name or "")
    return Response(200, render.one(rtype, stored, how, utc_now(ctx.clock), include_object(req)))


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = json.dumps({"v": "sandbox/1", "rv": rv, "start": list(key)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, name = data["start"]
        return str(ns), str(name)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("continue key is not valid: the token is malformed") from None


def _limit(req: Request) -> int:
    text = req.query.get("limit", "")
    if not text:
        return 0
    try:
        limit = int(text)
    except ValueError:
        raise bad_request(f"limit must be an integer, not {text!r}") from None
    return max(limit, 0)


def select(ctx: Context, target: Target, req: Request) -> tuple[int, list[Stored]]:
    """(resourceVersion, the matching objects in key order)."""
    flt = request_filter(target, req)
    rv, items = ctx.store.list(target.rtype.store_key, flt.namespace)
    if not (flt.labels.empty and flt.fields.empty):
        items = [s for s in items if flt.matches(s.obj)]
    return rv, items


def list_(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    how = negotiate(req.header("Accept"), allow_table=True)
    include = include_object(req)
    rv, items = select(ctx, target, req)
    token = req.query.get("continue")
    if token:
        start = _decode_continue(token)
        items = [s for s in items if s.key > start]
    limit = _limit(req)
    cont, remaining = None, None
    if limit and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        cont = _encode_continue(rv, items[-1].key)
    meta = render.list_meta(rv, cont, remaining)
    return Response(200, render.many(rtype, items, meta, how, utc_now(ctx.clock), include))
