"""Objects as a client receives them: single objects (with kind and apiVersion), lists (items
without them, as kube-apiserver writes typed lists), PartialObjectMetadata, Tables, and the
events.k8s.io view of stored core Events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scheduler.sandbox import tables
from scheduler.sandbox.media import Negotiated
from scheduler.sandbox.resources import ResourceType
from scheduler.sandbox.store import Stored, encode

Obj = dict[str, Any]


def served(rtype: ResourceType, stored: Stored) -> Obj:
    """The object as this API version serves it (a fresh dict the caller may change)."""
    obj = stored.copy()
    full = {"kind": rtype.kind, "apiVersion": rtype.stored_api_version, **obj}
    return rtype.from_storage(full) if rtype.from_storage else {**full, "apiVersion": rtype.api_version}


def object_bytes(rtype: ResourceType, stored: Stored) -> bytes:
    if rtype.from_storage:
        return encode(served(rtype, stored))
    head = b'{"kind":"%s","apiVersion":"%s"' % (rtype.kind.encode(), rtype.api_version.encode())
    body = stored.body
    return head + (b"," + body[1:] if len(body) > 2 else b"}")


def item_bytes(rtype: ResourceType, stored: Stored) -> bytes:
    if rtype.from_storage:
        obj = served(rtype, stored)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        return encode(obj)
    return stored.body


def _metadata_object(rtype: ResourceType, stored: Stored) -> Obj:
    # stored.obj is never mutated, so encoding straight from it is safe and saves a copy
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": stored.obj.get("metadata", {})}


def list_meta(rv: int, cont: str | None, remaining: int | None) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    if remaining:
        meta["remainingItemCount"] = remaining
    return meta


def list_bytes(rtype: ResourceType, items: Sequence[Stored], meta: Obj) -> bytes:
    head = encode({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta})
    return head[:-1] + b',"items":[' + b",".join(item_bytes(rtype, s) for s in items) + b"]}"


def metadata_list_bytes(rtype: ResourceType, items: Sequence[Stored], meta: Obj, version: str) -> bytes:
    api_version = f"meta.k8s.io/{version}"
    return encode(
        {
            "kind": "PartialObjectMetadataList",
            "apiVersion": api_version,
            "metadata": meta,
            "items": [{**_metadata_object(rtype, s), "apiVersion": api_version} for s in items],
        }
    )


def table_obj(
    rtype: ResourceType,
    items: Sequence[Stored],
    meta: Obj,
    now: datetime,
    include: str,
    version: str,
    with_columns: bool = True,
) -> Obj:
    pairs = [
        (s.obj, served(rtype, s) if include == "Object" else {"metadata": s.obj.get("metadata", {})}) for s in items
    ]
    return tables.table(rtype.kind, pairs, now, include, meta, with_columns, api_version=f"meta.k8s.io/{version}")


def one(rtype: ResourceType, stored: Stored, how: Negotiated, now: datetime, include: str) -> bytes:
    """A single object in the negotiated form."""
    if how.form == "table":
        meta = {"resourceVersion": str(stored.rv)}
        return encode(table_obj(rtype, [stored], meta, now, include, how.version))
    if how.form == "metadata":
        obj = _metadata_object(rtype, stored)
        obj["apiVersion"] = f"meta.k8s.io/{how.version}"
        return encode(obj)
    return object_bytes(rtype, stored)


def many(
    rtype: ResourceType, items: Sequence[Stored], meta: Obj, how: Negotiated, now: datetime, include: str
) -> bytes:
    if how.form == "table":
        return encode(table_obj(rtype, items, meta, now, include, how.version))
    if how.form == "metadata":
        return metadata_list_bytes(rtype, items, meta, how.version)
    return list_bytes(rtype, items, meta)


def status_success(rtype: ResourceType, stored: Stored | None, code: int | None = None) -> Obj:
    status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if stored is not None:
        meta = stored.obj.get("metadata", {})
        details: Obj = {"name": meta.get("name", "")}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
        details["uid"] = meta.get("uid", "")
        status["details"] = details
    if code is not None:
        status["code"] = code
    return status
