"""Loading what `kubectl get ... -o json` prints (a v1 List, or a typed list such as NodeList)
into the store, as it stands: statuses, uids and timestamps are kept, missing system fields are
filled in, and existing objects of the same name are replaced (watchers see ADDED/MODIFIED).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from scheduler.sandbox import admission, resources
from scheduler.sandbox.resources import ResourceType
from scheduler.sandbox.store import Store

Obj = dict[str, Any]
Source = Obj | bytes | str | Path


def _decode(source: Source) -> Obj:
    if isinstance(source, dict):
        return source
    if isinstance(source, Path):
        source = source.read_bytes()
    if isinstance(source, str):
        source = source.encode()
    data = msgspec.json.decode(source)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object (a v1 List or a typed list)")
    return data


def _type_of(item: Obj, list_kind: str, list_api_version: str) -> ResourceType:
    kind = item.get("kind") or (list_kind[:-4] if list_kind.endswith("List") else "")
    api_version = item.get("apiVersion") or list_api_version
    rtype = resources.for_kind(api_version, kind)
    if rtype is None:
        raise ValueError(
            f"cannot load {api_version} {kind} {(item.get('metadata') or {}).get('name', '')!r}: not a served kind"
        )
    return rtype


def load(store: Store, source: Source, clock: Callable[[], datetime], rng: random.Random) -> int:
    """Store every item; returns how many. Raises ValueError on a kind that is not served."""
    data = _decode(source)
    if "items" not in data:
        data = {"kind": "List", "apiVersion": "v1", "items": [data]}
    list_kind, list_api = data.get("kind", "List"), data.get("apiVersion", "v1")
    prepared: list[tuple[ResourceType, Obj]] = []
    for item in data.get("items") or []:
        rtype = _type_of(item, list_kind, list_api)
        obj = rtype.to_storage(item) if rtype.to_storage else dict(item)
        obj["kind"], obj["apiVersion"] = rtype.kind, rtype.stored_api_version
        meta = dict(obj.get("metadata") or {})
        if not meta.get("name"):
            raise ValueError(f"cannot load a {rtype.kind} without metadata.name")
        if rtype.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", admission.generate_uid(rng))
        meta.setdefault("creationTimestamp", admission.timestamp(clock))
        meta.pop("managedFields", None)
        obj["metadata"] = meta
        prepared.append((rtype, {"kind": obj.pop("kind"), "apiVersion": obj.pop("apiVersion"), **obj}))
    with store.lock:
        for rtype, obj in prepared:
            store.put(rtype.store_key, obj)
    return len(prepared)
