"""The resources the sandbox serves, described once: discovery, routing, tables and field
selectors all read this registry.

A `ResourceType` is one (group, version, resource). Two types can share a storage (core/v1 and
events.k8s.io/v1 Events), with `to_storage`/`from_storage` converting between the served form
and the stored one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scheduler.sandbox import conversion

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


def _path(*keys: str, default: str = "") -> Callable[[Obj], str]:
    def get(obj: Obj) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


_BOOLEAN_FIELDS = ("spec.unschedulable", "spec.hostNetwork")


def _fields(*paths: str) -> dict[str, Callable[[Obj], str]]:
    """Getters for field selectors; an absent boolean reads "false", as a Go bool does."""
    return {p: _path(*p.split("."), default="false" if p in _BOOLEAN_FIELDS else "") for p in paths}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    categories: tuple[str, ...] = ()
    storage: str = ""
    # fields a fieldSelector may name, besides metadata.name and metadata.namespace
    field_labels: dict[str, Callable[[Obj], str]] = field(default_factory=dict)
    # fieldSelector names of this view -> names in the stored form
    field_label_alias: Callable[[str], str] | None = None
    to_storage: Callable[[Obj], Obj] | None = None
    from_storage: Callable[[Obj], Obj] | None = None
    create_on_update: bool = False
    delete_returns_object: bool = False
    stored_as: str = ""  # the apiVersion of the stored form, when it differs from the served one

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stored_api_version(self) -> str:
        return self.stored_as or self.api_version

    @property
    def qualified(self) -> str:
        """`nodes`, `leases.coordination.k8s.io`: how kubectl and error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def store_key(self) -> str:
        return self.storage or self.plural

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None

    def field_getter(self, label: str) -> Callable[[Obj], str] | None:
        if label == "metadata.name":
            return _path("metadata", "name")
        if label == "metadata.namespace" and self.namespaced:
            return _path("metadata", "namespace")
        if self.field_label_alias is not None:
            label = self.field_label_alias(label)
        return self.field_labels.get(label)


_EVENT_FIELDS = _fields(
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "type",
)
_EVENT_FIELDS["source"] = _path("source", "component")

NODES = ResourceType(
    "",
    "v1",
    "nodes",
    "node",
    "Node",
    False,
    ("no",),
    subresources=(Subresource("status", "Node", STATUS_VERBS),),
    field_labels=_fields("spec.unschedulable"),
)
NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    False,
    ("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("status", "Namespace", STATUS_VERBS),),
    field_labels=_fields("status.phase"),
)
RESOURCE_QUOTAS = ResourceType(
    "",
    "v1",
    "resourcequotas",
    "resourcequota",
    "ResourceQuota",
    True,
    ("quota",),
    subresources=(Subresource("status", "ResourceQuota", STATUS_VERBS),),
    delete_returns_object=True,
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    True,
    ("po",),
    subresources=(
        Subresource("eviction", "Eviction", ("create",), group="policy", version="v1"),
        Subresource("status", "Pod", STATUS_VERBS),
    ),
    categories=("all",),
    field_labels=_fields(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    delete_returns_object=True,
)
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "event",
    "Event",
    True,
    ("ev",),
    field_labels=_EVENT_FIELDS,
    create_on_update=True,
)
EVENTS_V1 = ResourceType(
    "events.k8s.io",
    "v1",
    "events",
    "event",
    "Event",
    True,
    ("ev",),
    storage="events",
    field_labels=_EVENT_FIELDS,
    field_label_alias=conversion.events_field_label,
    to_storage=conversion.events_to_core,
    from_storage=conversion.core_to_events,
    create_on_update=True,
    stored_as=conversion.CORE_API_VERSION,
)
LEASES = ResourceType(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    True,
    create_on_update=True,
)

ADMISSION_GROUP = "admissionregistration.k8s.io"
VALIDATING_ADMISSION_POLICIES = ResourceType(
    ADMISSION_GROUP,
    "v1",
    "validatingadmissionpolicies",
    "validatingadmissionpolicy",
    "ValidatingAdmissionPolicy",
    False,
    subresources=(Subresource("status", "ValidatingAdmissionPolicy", STATUS_VERBS, group=ADMISSION_GROUP),),
    categories=("api-extensions",),
)
VALIDATING_ADMISSION_POLICY_BINDINGS = ResourceType(
    ADMISSION_GROUP,
    "v1",
    "validatingadmissionpolicybindings",
    "validatingadmissionpolicybinding",
    "ValidatingAdmissionPolicyBinding",
    False,
    categories=("api-extensions",),
)

ALL: tuple[ResourceType, ...] = (
    NODES,
    NAMESPACES,
    RESOURCE_QUOTAS,
    PODS,
    EVENTS,
    EVENTS_V1,
    LEASES,
    VALIDATING_ADMISSION_POLICIES,
    VALIDATING_ADMISSION_POLICY_BINDINGS,
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def group_versions() -> dict[str, list[str]]:
    """Served groups (core is "") -> versions, in discovery order."""
    out: dict[str, list[str]] = {}
    for r in ALL:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in ALL if r.group == group and r.version == version]


def for_kind(api_version: str, kind: str) -> ResourceType | None:
    """The served type of an object from a `kubectl get -o json` dump."""
    for r in ALL:
        if r.kind == kind and r.api_version == api_version:
            return r
    return None
