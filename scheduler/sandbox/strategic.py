"""Strategic merge patch (application/strategic-merge-patch+json) for the kinds the sandbox serves.

Maps merge key by key (`null` deletes); lists follow the field's Kubernetes patch strategy from
the Go struct tags (k8s.io/api core/v1 types.go): `merge` with a merge key (containers by `name`,
conditions by `type`, ...), `merge` of primitives (finalizers), or, with no strategy, replace
(node `spec.taints`, tolerations, ...). Directives: `$patch: replace|delete|merge` in maps and list
items, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, cast

from scheduler.sandbox.errors import bad_request


@dataclass(frozen=True)
class Schema:
    """Patch strategies below one map: field -> child schema, or -> a merge list."""

    fields: dict[str, Schema | MergeList] = field(default_factory=dict)

    def child(self, key: str) -> Schema | MergeList | None:
        return self.fields.get(key)


@dataclass(frozen=True)
class MergeList:
    key: str | None  # None: a list of primitives merged as a set
    item: Schema = Schema()


EMPTY = Schema()

_META = Schema({"finalizers": MergeList(None), "ownerReferences": MergeList("uid")})
_CONTAINER = Schema(
    {
        "ports": MergeList("containerPort"),
        "env": MergeList("name"),
        "volumeMounts": MergeList("mountPath"),
        "volumeDevices": MergeList("devicePath"),
    }
)
_POD_SPEC = Schema(
    {
        "containers": MergeList("name", _CONTAINER),
        "initContainers": MergeList("name", _CONTAINER),
        "ephemeralContainers": MergeList("name", _CONTAINER),
        "volumes": MergeList("name"),
        "imagePullSecrets": MergeList("name"),
        "hostAliases": MergeList("ip"),
        "topologySpreadConstraints": MergeList("topologyKey"),
        "resourceClaims": MergeList("name"),
        "schedulingGates": MergeList("name"),
    }
)
_CONDITIONS = MergeList("type")

SCHEMAS: dict[str, Schema] = {
    "Node": Schema(
        {
            "metadata": _META,
            "spec": Schema({"podCIDRs": MergeList(None)}),  # spec.taints: no strategy -> replaced
            "status": Schema({"conditions": _CONDITIONS, "addresses": MergeList("type")}),
        }
    ),
    "Pod": Schema(
        {
            "metadata": _META,
            "spec": _POD_SPEC,
            "status": Schema({"conditions": _CONDITIONS, "podIPs": MergeList("ip"), "hostIPs": MergeList("ip")}),
        }
    ),
    "Namespace": Schema({"metadata": _META, "status": Schema({"conditions": _CONDITIONS})}),
}


def schema_for(kind: str) -> Schema:
    return SCHEMAS.get(kind, Schema({"metadata": _META}))


_DELETE = object()  # a map patched with `$patch: delete`
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"


def apply(original: dict[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _merge_map(original, patch, schema_for(kind))
    if result is _DELETE:
        raise bad_request("strategic merge patch cannot delete the whole object")
    # _merge_map of a dict patch returns a dict unless it is _DELETE, ruled out above
    return cast(dict[str, Any], result)


def _merge_map(original: Any, patch: dict[str, Any], schema: Schema) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip(patch)
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive} in map: {patch}")
    result = dict(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_SET_ORDER):
            orders[key[len(_SET_ORDER) :]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVES):
            name = key[len(_DELETE_PRIMITIVES) :]
            if not isinstance(value, list):
                raise bad_request(f"invalid patch: {key} must be a list")
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = schema.child(key)
        if isinstance(value, dict):
            sub = child if isinstance(child, Schema) else EMPTY
            merged = _merge_map(result.get(key), value, sub)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            if isinstance(child, MergeList):
                result[key] = _merge_list(result.get(key), value, child)
            else:
                result[key] = [_strip(v) if isinstance(v, dict) else v for v in value]
        else:
            result[key] = value
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("invalid patch: $retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain or k in patch}
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            list_schema = schema.child(name)
            merge_key = list_schema.key if isinstance(list_schema, MergeList) else None
            result[name] = _ordered(result[name], order, merge_key)
    return result


def _merge_list(original: Any, patch: list[Any], spec: MergeList) -> list[Any]:
    base = list(original) if isinstance(original, list) else []
    if spec.key is None:
        if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
            return [v for v in patch if not isinstance(v, dict)]
        out = list(base)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    out = [copy.copy(v) for v in base]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"invalid patch: list item {item!r} is not a map with merge key {spec.key}")
        if spec.key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {spec.key}")
        at = next((i for i, v in enumerate(out) if isinstance(v, dict) and v.get(spec.key) == item[spec.key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del out[at]
            continue
        if at is None:
            out.append(_strip(item))
        else:
            merged = _merge_map(out[at], item, spec.item)
            if merged is _DELETE:
                del out[at]
            else:
                out[at] = merged
    return out


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key and isinstance(v, dict) else v

    wanted = [ident(o) if isinstance(o, dict) and key else o for o in order]
    ranked = [v for w in wanted for v in items if ident(v) == w]
    rest = [v for v in items if ident(v) not in wanted]
    return ranked + rest


def _strip(value: Any) -> Any:
    """Drop patch directives from a value that is inserted as it stands."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if not (
                k.startswith("$") and (k in ("$patch", "$retainKeys") or k.startswith((_SET_ORDER, _DELETE_PRIMITIVES)))
            )
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
