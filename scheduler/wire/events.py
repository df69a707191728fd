"""core/v1 Events as gpu-scheduler writes them, and what one says when read back.

An Event lives in the namespace of the object it is about (a consortium namespace, or the
scheduler's own for a policy problem), so consortium engineers see theirs with
`kubectl get events -n <namespace>`. Names are deterministic: the same instant, reason and
subject give the same name, so a retried write finds its Event there instead of doubling it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scheduler.wire import COMPONENT, MANAGED_BY, timestamps

MESSAGE_LIMIT = 1024
NORMAL, WARNING = "Normal", "Warning"


def name(at: datetime | None, reason: str, namespace: str, subject: str) -> str:
    """`at=None` names an Event that is to exist once whatever the instant (one per round)."""
    when = at.isoformat() if at is not None else "once"
    digest = hashlib.sha256(f"{when}|{reason}|{namespace}|{subject}".encode()).hexdigest()[:20]
    return f"{COMPONENT}.{digest}"


@dataclass(frozen=True)
class EventRecord:
    """What an Event says, as written or read back."""

    name: str
    namespace: str
    reason: str
    message: str
    warning: bool
    at: datetime
    labels: Mapping[str, str]
    related: tuple[str, str] | None = None  # (kind, name) of a second object it is about
    about: tuple[str, str] | None = None  # (kind, name) of the object in its namespace it is about; None: the namespace


def encode(record: EventRecord) -> dict[str, Any]:
    """The Event object, about an object in its namespace (the namespace itself unless `about`)."""
    stamp = timestamps.encode_utc(record.at)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": record.name, "namespace": record.namespace, "labels": {**MANAGED_BY, **record.labels}},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": record.about[0] if record.about else "Namespace",
            "name": record.about[1] if record.about else record.namespace,
            "namespace": record.namespace,
        },
        "reason": record.reason,
        "message": record.message[:MESSAGE_LIMIT],
        "type": WARNING if record.warning else NORMAL,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    if record.related:
        body["related"] = {"apiVersion": "v1", "kind": record.related[0], "name": record.related[1]}
    return body


def decode(body: Mapping[str, Any]) -> EventRecord:
    """An Event object back into what it says; raises ValueError when it is not one of ours."""
    meta = body.get("metadata") or {}
    at = timestamps.decode(body.get("lastTimestamp") or body.get("firstTimestamp"))
    if body.get("kind") != "Event" or not meta.get("name") or at is None:
        raise ValueError("not an Event with a name and a timestamp")
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in MANAGED_BY}
    related = body.get("related")
    involved = body.get("involvedObject") or {}
    about = (involved["kind"], involved.get("name", "")) if involved.get("kind", "Namespace") != "Namespace" else None
    return EventRecord(
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        reason=body.get("reason", ""),
        message=body.get("message", ""),
        warning=body.get("type") == WARNING,
        at=at,
        labels=labels,
        related=(related["kind"], related["name"]) if related else None,
        about=about,
    )
