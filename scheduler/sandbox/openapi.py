"""/openapi/v3: the index of group-version documents and, for each, the paths and operations of
the served resources, as kube-apiserver publishes them, without the object schemas.

That is what `kubectl apply`/`create` (default `--validate=strict`) read to learn that the server
validates fields itself: a PATCH operation tagged with the kind's `x-kubernetes-group-version-kind`
and a `fieldValidation` query parameter. kubectl then sends `fieldValidation=Strict` (accepted,
not enforced: the sandbox keeps no schemas) instead of validating against /openapi/v2, which is
not served. The PATCH operations name no strategic-merge-patch body, so `kubectl apply` computes
its patches from the types compiled into it, as it does when a schema is missing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from scheduler.sandbox import discovery, resources
from scheduler.sandbox.resources import ResourceType

Obj = dict[str, Any]

_QUERY = {"dryRun", "fieldManager", "fieldValidation"}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _param(name: str, where: str = "query") -> Obj:
    out: Obj = {"name": name, "in": where, "schema": {"type": "string", "uniqueItems": True}}
    if where == "path":
        out["required"] = True
    return out


def _operation(r: ResourceType, verb: str, action: str, params: list[Obj]) -> Obj:
    group = r.group.split(".")[0] or "core"
    scope = "Namespaced" if r.namespaced else ""
    return {
        "tags": [f"{group}_{r.version}"],
        "operationId": f"{verb}{group.capitalize()}{r.version.capitalize()}{scope}{r.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    }


def _paths(r: ResourceType) -> dict[str, Obj]:
    base = "/" + _gv_path(r.group, r.version)
    if r.namespaced:
        base += "/namespaces/{namespace}"
    collection, item = f"{base}/{r.plural}", f"{base}/{r.plural}/{{name}}"
    writes = [_param(name) for name in sorted(_QUERY)]
    path_params = [_param("name", "path")] + ([_param("namespace", "path")] if r.namespaced else [])
    out: dict[str, Obj] = {
        collection: {
            "get": _operation(r, "list", "list", []),
            "post": _operation(r, "create", "post", writes),
            "parameters": path_params[1:],
        },
        item: {
            "get": _operation(r, "read", "get", []),
            "put": _operation(r, "replace", "put", writes),
            "patch": _operation(r, "patch", "patch", writes),
            "delete": _operation(r, "delete", "delete", [_param("dryRun")]),
            "parameters": path_params,
        },
    }
    for sub in r.subresources:
        if sub.name == "status":
            out[f"{item}/status"] = {
                "get": _operation(r, "readStatus", "get", []),
                "put": _operation(r, "replaceStatus", "put", writes),
                "patch": _operation(r, "patchStatus", "patch", writes),
                "parameters": path_params,
            }
    return out


def document(group: str, version: str) -> Obj | None:
    """The OpenAPI v3 document of one group-version (None: not served)."""
    served = resources.in_group_version(group, version)
    if not served:
        return None
    paths: dict[str, Obj] = {}
    for r in served:
        paths.update(_paths(r))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery.KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _hash(doc: Obj) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def index() -> Obj:
    """GET /openapi/v3: each group-version's document, addressed by its hash."""
    paths: Obj = {}
    for group, versions in resources.group_versions().items():
        for version in versions:
            doc = document(group, version)
            assert doc is not None
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(doc)}"}
    return {"paths": paths}
