"""RFC 3339 instants as Kubernetes objects carry them.

Two spellings are written: `encode_utc` (second precision, "Z") for API fields such as an
Event's timestamps and the telemetry report, and `encode` (the instant's own offset) for the
drain annotations, which people read in the programme's timezone. `decode` reads either, and
any other RFC 3339 offset; text without an offset is not an instant and decodes to None.
"""

from __future__ import annotations

from datetime import UTC, datetime


def encode(at: datetime) -> str:
    """The instant in its own offset, e.g. 2026-01-15T15:00:00+09:00."""
    if at.tzinfo is None:
        raise ValueError("a timestamp needs a timezone-aware instant")
    return at.isoformat()


def encode_utc(at: datetime) -> str:
    """The instant in UTC at second precision, e.g. 2026-01-15T06:00:00Z (metav1.Time)."""
    if at.tzinfo is None:
        raise ValueError("a timestamp needs a timezone-aware instant")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(text: str | None) -> datetime | None:
    """The instant `text` names, or None when it is empty, malformed or has no offset."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def same_instant(a: str, b: str) -> bool:
    """Whether two spellings name the same instant ("...Z" and "...+09:00" may)."""
    if a == b:
        return True
    x, y = decode(a), decode(b)
    return x is not None and x == y
