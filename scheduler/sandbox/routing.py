"""URL paths to what they name: a discovery document, or a resource request
(type, namespace, name, subresource). Legacy `/api/v1/watch/...` paths are watches.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from scheduler.sandbox import resources
from scheduler.sandbox.errors import path_not_found
from scheduler.sandbox.resources import ResourceType

_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Discovery:
    what: str  # "version", "api", "apis", "group", "resources", "health", "openapi", "openapi-v3"
    group: str = ""
    version: str = ""


@dataclass(frozen=True)
class Target:
    rtype: ResourceType
    namespace: str | None  # None: cluster-scoped, or every namespace
    name: str | None
    subresource: str | None
    legacy_watch: bool = False


def route(path: str) -> Discovery | Target:
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        raise path_not_found()
    head = parts[0]
    if head == "version" and len(parts) == 1:
        return Discovery("version")
    if head in ("healthz", "readyz", "livez"):
        return Discovery("health")
    if head == "openapi":
        if parts[1:] == ["v3"]:
            return Discovery("openapi-v3")
        if parts[1:3] == ["v3", "api"] and len(parts) == 4:
            return Discovery("openapi-v3", "", parts[3])
        if parts[1:3] == ["v3", "apis"] and len(parts) == 5:
            return Discovery("openapi-v3", parts[3], parts[4])
        return Discovery("openapi")
    if head == "api":
        if len(parts) == 1:
            return Discovery("api")
        group, version, rest = "", parts[1], parts[2:]
    elif head == "apis":
        if len(parts) == 1:
            return Discovery("apis")
        if len(parts) == 2:
            return Discovery("group", parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise path_not_found()
    if not rest:
        return Discovery("resources", group, version)
    watch = False
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
    namespace = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (group == "" and len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)
    ):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else ""
    rtype = resources.lookup(group, version, plural)
    if rtype is None or len(rest) > 3:
        raise path_not_found()
    if namespace is not None and not rtype.namespaced:
        raise path_not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and rtype.subresource(sub) is None:
        raise path_not_found()
    return Target(rtype, namespace, name, sub, watch)
