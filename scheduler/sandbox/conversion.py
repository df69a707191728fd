"""core/v1 Event <-> events.k8s.io/v1 Event, as kube-apiserver converts them.

Both APIs are views of one stored Event, so an Event written through either group is listed by
both (`kubectl get events` reads core/v1). The store keeps the core/v1 form; the events.k8s.io
view renames fields on the way in and out (k8s.io/kubernetes pkg/apis/events/v1/conversion.go).
"""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 name -> core/v1 name; fields absent here keep their name in both.
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_BACK = {core: new for new, core in _RENAMED.items()}

CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"


def events_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "apiVersion":
            out[key] = CORE_API_VERSION
        else:
            out[_RENAMED.get(key, key)] = value
    return out


def core_to_events(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "apiVersion":
            out[key] = EVENTS_API_VERSION
        else:
            out[_BACK.get(key, key)] = value
    out.setdefault("eventTime", None)  # a MicroTime without omitempty: legacy events show null
    return out


def events_field_label(label: str) -> str:
    """events.k8s.io field selector names (regarding.name, ...) -> the stored core names."""
    head, _, rest = label.partition(".")
    core = _RENAMED.get(head, head)
    return f"{core}.{rest}" if rest else core
