"""What kube-apiserver does to an object between the request and the store: system fields
(uid, creationTimestamp, generateName), each kind's create/update strategy (a new Pod starts
Pending, a Namespace gets its finalizer and metadata.name label, the main resource cannot write
`status` and `/status` cannot write `spec`), and validation of names, labels, annotations and
Events, answered as 422 Invalid with field causes; ValidatingAdmissionPolicies and their
bindings are defaulted and their CEL compiled (policies.py).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scheduler.sandbox import errors, policies
from scheduler.sandbox.resources import ADMISSION_GROUP, ResourceType
from scheduler.sandbox.selectors import label_key_error, label_value_error
from scheduler.wire import timestamps

Obj = dict[str, Any]
Clock = Callable[[], datetime]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_ANNOTATIONS_MAX = 256 * 1024
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def utc_now(clock: Clock) -> datetime:
    now = clock()
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def timestamp(clock: Clock) -> str:
    """metav1.Time as the API server writes it (RFC 3339, UTC, seconds)."""
    return timestamps.encode_utc(utc_now(clock))


def generate_name(prefix: str, rng: random.Random) -> str:
    return prefix[:58] + "".join(rng.choice(_GENERATE_ALPHABET) for _ in range(5))


def generate_uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def check_type(rtype: ResourceType, obj: Any, kind: str | None = None, api_version: str | None = None) -> Obj:
    """The body must be an object of this resource's kind (kind/apiVersion may be omitted)."""
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    kind = kind or rtype.kind
    api_version = api_version or rtype.api_version
    if obj.get("kind") not in (None, "", kind):
        raise errors.bad_request(
            f"the object provided is unrecognized (must be of type {kind}): kind {obj.get('kind')!r}"
        )
    if obj.get("apiVersion") not in (None, "", api_version):
        raise errors.bad_request(
            f"the API version in the data ({obj.get('apiVersion')}) does not "
            f"match the expected API version ({api_version})"
        )
    if not isinstance(obj.get("metadata", {}), dict):
        raise errors.bad_request("metadata must be an object")
    return obj


def _qos(spec: Obj) -> str:
    requests_seen = limits_seen = False
    guaranteed = True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests_seen |= bool(req)
        limits_seen |= bool(lim)
        for name in ("cpu", "memory"):
            if name not in lim or req.get(name, lim.get(name)) != lim.get(name):
                guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_create(rtype: ResourceType, obj: Obj, namespace: str | None, clock: Clock, rng: random.Random) -> Obj:
    """A new object as it will be stored (without resourceVersion), before validation."""
    meta = dict(obj.get("metadata") or {})
    if rtype.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace or meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"], rng)
    for key in (*_SYSTEM_META, "resourceVersion", "selfLink", "managedFields"):
        meta.pop(key, None)
    meta["uid"] = generate_uid(rng)
    meta["creationTimestamp"] = timestamp(clock)
    out: Obj = {"kind": rtype.kind, "apiVersion": rtype.stored_api_version}
    out.update({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
    out["metadata"] = meta
    if rtype.kind == "Pod":
        spec = out.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        out["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
    elif rtype.kind == "Namespace":
        labels = dict(meta.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
        meta["labels"] = labels
        spec = dict(out.get("spec") or {})
        finalizers = list(spec.get("finalizers") or [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        spec["finalizers"] = finalizers
        out["spec"] = spec
        out["status"] = {"phase": "Active"}
    elif rtype.kind == "ResourceQuota":
        out["status"] = quota_status(out, {})
    elif rtype.group == ADMISSION_GROUP:
        policies.set_defaults(rtype.kind, out)
        meta["generation"] = 1
        if rtype.has_status:
            out["status"] = {}  # written by the API server's type checker, not by clients
    return out


def quota_status(obj: Obj, status: Obj | None) -> Obj:
    """What the resource quota controller writes: status.hard mirrors spec.hard."""
    status = dict(status or {})
    hard = (obj.get("spec") or {}).get("hard")
    if hard:
        status["hard"] = dict(hard)
        used = dict(status.get("used") or {})
        status["used"] = {k: used.get(k, "0") for k in hard}
    else:
        status.pop("hard", None)
        status.pop("used", None)
    return status


def prepare_update(rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """`new` with what this endpoint may not change taken from `old`."""
    out: Obj = {"kind": rtype.kind, "apiVersion": rtype.stored_api_version}
    out.update({k: v for k, v in new.items() if k not in ("kind", "apiVersion")})
    meta = dict(new.get("metadata") or {})
    old_meta = old.get("metadata") or {}
    for key in _SYSTEM_META:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("managedFields", None)
    if rtype.namespaced:
        meta["namespace"] = old_meta.get("namespace", "")
    out["metadata"] = meta
    if rtype.has_status:
        keep = "status" if subresource is None else "spec"
        if keep in old:
            out[keep] = old[keep]
        else:
            out.pop(keep, None)
    if rtype.kind == "Namespace":
        labels = dict(meta.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
        meta["labels"] = labels
    if rtype.kind == "ResourceQuota" and subresource is None:
        out["status"] = quota_status(out, out.get("status"))
    if rtype.group == ADMISSION_GROUP:
        policies.set_defaults(rtype.kind, out)
        if "generation" in old_meta and out.get("spec") != old.get("spec"):
            meta["generation"] = old_meta["generation"] + 1
    return out


def validate(rtype: ResourceType, obj: Obj, creating: bool) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    else:
        pattern, limit, what = (
            (_DNS_LABEL, 63, "RFC 1123 label")
            if rtype.kind == "Namespace"
            else (_DNS_SUBDOMAIN, 253, "RFC 1123 subdomain")
        )
        if rtype.kind == "Event":
            if name in (".", "..") or "/" in name or "%" in name:
                causes.append(
                    ("metadata.name", "FieldValueInvalid", f"Invalid value: \"{name}\": may not contain '/' or '%'\"")
                )
        elif len(name) > limit or not pattern.match(name):
            causes.append(
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase {what} must consist of lower '
                    f"case alphanumeric characters, '-' or '.', and must start and end "
                    f"with an alphanumeric character",
                )
            )
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(("metadata.labels", "FieldValueInvalid", "Invalid value: must be a map"))
        labels = {}
    for key, value in labels.items():
        why = label_key_error(key)
        if why:
            causes.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {why}'))
        if not isinstance(value, str):
            causes.append(
                (f"metadata.labels[{key}]", "FieldValueInvalid", f"Invalid value: {value!r}: must be a string")
            )
            continue
        why = label_value_error(value)
        if why:
            causes.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{value}": {why}'))
    annotations = meta.get("annotations") or {}
    size = 0
    for key, value in annotations.items():
        why = label_key_error(key)
        if why:
            causes.append(("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}": {why}'))
        if not isinstance(value, str):
            causes.append(
                (f"metadata.annotations[{key}]", "FieldValueInvalid", f"Invalid value: {value!r}: must be a string")
            )
            continue
        size += len(key) + len(value.encode())
    if size > _ANNOTATIONS_MAX:
        causes.append(
            ("metadata.annotations", "FieldValueTooLong", f"Too long: must have at most {_ANNOTATIONS_MAX} bytes")
        )
    if rtype.kind == "Event":
        causes.extend(_event_causes(rtype, obj, creating))
    if rtype.group == ADMISSION_GROUP:
        causes.extend(policies.validate(rtype.kind, obj))
    if causes:
        raise errors.invalid(rtype.group, rtype.kind, name, causes)


def _event_causes(rtype: ResourceType, event: Obj, creating: bool) -> list[tuple[str, str, str]]:
    """kube-apiserver's Event validation; `event` is in the stored (core/v1) form."""
    causes: list[tuple[str, str, str]] = []
    strict = rtype.group == "events.k8s.io"
    rename: Callable[[str, str], str] = (lambda core, new: new) if strict else (lambda core, new: core)
    namespace = (event.get("metadata") or {}).get("namespace", "")
    involved = event.get("involvedObject") or {}
    involved_ns = involved.get("namespace", "")
    field_ns = f"{rename('involvedObject', 'regarding')}.namespace"
    if not event.get("eventTime"):
        if not involved_ns:
            if namespace not in ("", "default"):
                causes.append(
                    (field_ns, "FieldValueInvalid", f'Invalid value: "{involved_ns}": does not match event.namespace')
                )
        elif namespace != involved_ns:
            causes.append(
                (field_ns, "FieldValueInvalid", f'Invalid value: "{involved_ns}": does not match event.namespace')
            )
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            causes.append(
                (field_ns, "FieldValueInvalid", f'Invalid value: "{involved_ns}": does not match event.namespace')
            )
        controller_field = "reportingController" if strict else "reportingComponent"
        for fname, core_key, limit in (
            (controller_field, "reportingComponent", 0),
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ):
            value = event.get(core_key) or ""
            if not value:
                causes.append((fname, "FieldValueRequired", "Required value"))
            elif limit and len(value) > limit:
                causes.append((fname, "FieldValueInvalid", f'Invalid value: "": can have at most {limit} characters'))
        if len(event.get("message") or "") > 1024:
            causes.append(
                (rename("message", "note"), "FieldValueInvalid", 'Invalid value: "": can have at most 1024 characters')
            )
    if strict and creating:
        if not event.get("eventTime"):
            causes.append(("eventTime", "FieldValueRequired", "Required value"))
        if event.get("type") not in ("Normal", "Warning"):
            causes.append(
                ("type", "FieldValueInvalid", f'Invalid value: "": has invalid value: {event.get("type", "")}')
            )
        for core_key, new_key in (
            ("firstTimestamp", "deprecatedFirstTimestamp"),
            ("lastTimestamp", "deprecatedLastTimestamp"),
            ("count", "deprecatedCount"),
        ):
            if event.get(core_key):
                causes.append((new_key, "FieldValueInvalid", 'Invalid value: "": needs to be unset'))
        source = event.get("source") or {}
        if source.get("component") or source.get("host"):
            causes.append(("deprecatedSource", "FieldValueInvalid", 'Invalid value: "": needs to be unset'))
    return causes
