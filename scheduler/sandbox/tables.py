"""meta.k8s.io/v1 Table, the server-side printing `kubectl get` asks for.

Columns and cells follow kube-apiserver's printers (pkg/printers/internalversion): Nodes show
NAME, STATUS, ROLES, AGE, VERSION (+ wide columns), Namespaces NAME, STATUS, AGE, Events LAST
SEEN, TYPE, REASON, OBJECT, MESSAGE (+ wide), and so on; other kinds get NAME and CREATED AT.
Each row carries the object (PartialObjectMetadata by default, the whole object with
includeObject=Object), from which kubectl prints NAMESPACE for -A and label columns for -L.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from scheduler.wire import timestamps

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(text: str | None, now: datetime) -> str:
    at = timestamps.decode(text)
    if at is None:
        return "<unknown>"
    return human_duration((now - at).total_seconds())


def _col(name: str, type_: str = "string", fmt: str = "", priority: int = 0, description: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _col(
    "Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."
)


def _age(obj: Obj, now: datetime) -> str:
    return _since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _name(obj: Obj) -> str:
    name: str = (obj.get("metadata") or {}).get("name", "")
    return name


# -- Node ---------------------------------------------------------------------------------------
def _node_status(obj: Obj) -> str:
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready")
    status = ["Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"]
    if (obj.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(obj: Obj) -> str:
    roles = set()
    for key, value in ((obj.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(obj: Obj, kind: str) -> str:
    for a in (obj.get("status") or {}).get("addresses") or []:
        if a.get("type") == kind:
            address: str = a.get("address", "")
            return address
    return "<none>"


def _node_row(obj: Obj, now: datetime) -> list[Any]:
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    return [
        _name(obj),
        _node_status(obj),
        _node_roles(obj),
        _age(obj, now),
        info.get("kubeletVersion", ""),
        _address(obj, "InternalIP"),
        _address(obj, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_NODE_COLUMNS = [
    _NAME,
    _col("Status", description="The status of the node"),
    _col("Roles", description="The roles of the node"),
    _AGE,
    _col("Version", description="Kubelet Version reported by the node."),
    _col("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    _col("External-IP", priority=1, description="List of addresses reachable to the node."),
    _col("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release."),
    _col("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
    _col("Container-Runtime", priority=1, description="Container Runtime Version reported by the node."),
]


# -- Namespace ----------------------------------------------------------------------------------
def _namespace_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


_NAMESPACE_COLUMNS = [_NAME, _col("Status", description="The status of the namespace"), _AGE]


# -- Event (stored in core/v1 form) ------------------------------------------------------------
def _event_row(obj: Obj, now: datetime) -> list[Any]:
    first = _since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first = _since(obj.get("eventTime"), now)
    last = _since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 0
    series = obj.get("series")
    if series:
        last = _since(series.get("lastObservedTime"), now)
        count = series.get("count", 0)
    elif count == 0:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    if source.get("component"):
        src = source["component"] + (f", {source['host']}" if source.get("host") else "")
    else:
        src = obj.get("reportingComponent", "")
        if obj.get("reportingInstance"):
            src += f", {obj['reportingInstance']}"
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        src,
        (obj.get("message") or "").strip(),
        first,
        int(count),
        _name(obj),
    ]


_EVENT_COLUMNS = [
    _col("Last Seen", description="The time at which the most recent occurrence of this event was recorded."),
    _col("Type", description="Type of this event (Normal, Warning), new types could be added in the future"),
    _col(
        "Reason",
        description="This should be a short, machine understandable string that gives "
        "the reason for the transition into the object's current status.",
    ),
    _col("Object", description="The object that this event is about."),
    _col("Subobject", priority=1, description="The field of the object this event is about."),
    _col("Source", priority=1, description="The component reporting this event."),
    _col("Message", description="A human-readable description of the status of this operation."),
    _col("First Seen", priority=1, description="The time at which the event was first recorded."),
    _col("Count", priority=1, description="The number of times this event has occurred."),
    _col("Name", priority=1, fmt="name", description="Name must be unique within a namespace."),
]


# -- Pod ----------------------------------------------------------------------------------------
def _pod_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    for c in statuses:
        waiting = (c.get("state") or {}).get("waiting") or {}
        terminated = (c.get("state") or {}).get("terminated") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated.get("reason"):
            reason = terminated["reason"]
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        _name(obj),
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


_POD_COLUMNS = [
    _NAME,
    _col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", description="The aggregate status of the containers in this pod."),
    _col(
        "Restarts",
        description="The number of times the containers in this pod have been restarted "
        "and when the last container in this pod has restarted.",
    ),
    _AGE,
    _col("IP", priority=1, description="IP address allocated to the pod."),
    _col("Node", priority=1, description="Name of the node this pod is bound to."),
    _col("Nominated Node", priority=1, description="Name of the node this pod is nominated to."),
    _col("Readiness Gates", priority=1, description="The readiness gates of this pod."),
]


# -- ResourceQuota ------------------------------------------------------------------------------
def _quota_row(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        pieces = resource.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        target.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [_name(obj), _age(obj, now), ", ".join(requests), ", ".join(limits)]


_QUOTA_COLUMNS = [
    _NAME,
    _AGE,
    _col("Request", description="Request represents a minimum amount of cpu/memory that a container may consume."),
    _col(
        "Limit",
        description="Limits control the maximum amount of cpu/memory that a container may "
        "use independent of contention on the node.",
    ),
]


# -- Lease --------------------------------------------------------------------------------------
def _lease_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), (obj.get("spec") or {}).get("holderIdentity") or "<none>", _age(obj, now)]


_LEASE_COLUMNS = [_NAME, _col("Holder", description="The holder of the lease."), _AGE]


# -- ValidatingAdmissionPolicy and its binding ---------------------------------------------------
def _policy_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    kind = spec.get("paramKind")
    param = f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}" if isinstance(kind, dict) else "<unset>"
    return [_name(obj), len(spec.get("validations") or []), param, _age(obj, now)]


_POLICY_COLUMNS = [
    _NAME,
    _col(
        "Validations",
        type_="integer",
        description="Validations indicates the number of validation rules defined in this configuration",
    ),
    _col("ParamKind", description="ParamKind specifies the kind of resources used to parameterize this policy"),
    _AGE,
]


def _binding_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    ref = spec.get("paramRef")
    param = "<unset>"
    if isinstance(ref, dict) and ref.get("name"):
        param = f"{ref.get('namespace') or '*'}/{ref['name']}"
    return [_name(obj), spec.get("policyName", ""), param, _age(obj, now)]


_BINDING_COLUMNS = [
    _NAME,
    _col("PolicyName", description="PolicyName indicates the policy definition which the policy binding binded to"),
    _col("ParamRef", description="ParamRef indicates the param resource which sets the configration param"),
    _AGE,
]


# -- anything else ------------------------------------------------------------------------------
def _default_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), (obj.get("metadata") or {}).get("creationTimestamp")]


_DEFAULT_COLUMNS = [_NAME, _col("Created At", type_="date", description=_AGE["description"])]

Printer = tuple[list[Obj], Callable[[Obj, datetime], list[Any]]]
_PRINTERS: dict[str, Printer] = {
    "Node": (_NODE_COLUMNS, _node_row),
    "Namespace": (_NAMESPACE_COLUMNS, _namespace_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "Pod": (_POD_COLUMNS, _pod_row),
    "ResourceQuota": (_QUOTA_COLUMNS, _quota_row),
    "Lease": (_LEASE_COLUMNS, _lease_row),
    "ValidatingAdmissionPolicy": (_POLICY_COLUMNS, _policy_row),
    "ValidatingAdmissionPolicyBinding": (_BINDING_COLUMNS, _binding_row),
}


def printer(kind: str) -> Printer:
    return _PRINTERS.get(kind, (_DEFAULT_COLUMNS, _default_row))


INCLUDE_OBJECT = ("None", "Metadata", "Object")


def table(
    kind: str,
    objects: list[tuple[Obj, Obj]],
    now: datetime,
    include: str,
    list_meta: Obj,
    with_columns: bool = True,
    api_version: str = "meta.k8s.io/v1",
) -> Obj:
    """objects: (stored form for the cells, served form for the row's object)."""
    columns, row_of = printer(kind)
    rows = []
    for stored, served in objects:
        row: Obj = {"cells": row_of(stored, now)}
        if include == "Object":
            row["object"] = served
        elif include == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": served.get("metadata") or {},
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_meta,
        "columnDefinitions": columns if with_columns else None,
        "rows": rows,
    }
