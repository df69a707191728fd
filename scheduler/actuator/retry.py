"""What to do after a failed API request: re-apply at once, wait and retry, or give up on it.

The official client raises one `ApiException` for everything and urllib3 errors for a broken
connection; `classify` turns both into a small hierarchy that says what the caller does next:

    Conflict (409)              re-read the object and re-apply now (AlreadyExists: on create)
    Transient (429, 5xx, I/O)   wait `Backoff.delay(...)` (honouring Retry-After), then retry
    Permanent (other 4xx)       record the write as failed and go on with the others
        NotFound (404)          the object is gone: what that means depends on the write
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field

import urllib3
from kubernetes.client.exceptions import ApiException


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status or 'no answer'}: {message}" if status else message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Conflict(ApiFailure):
    """409: the object changed under us (or exists already): re-read, re-apply."""


class AlreadyExists(Conflict):
    """409 on create: the object is there; confirm it or patch it instead."""


class Transient(ApiFailure):
    """429, 5xx, timeouts, broken connections, an expired list: the same request may succeed later."""


class Permanent(ApiFailure):
    """A 4xx that a retry cannot fix (invalid, forbidden): give this write up."""


class NotFound(Permanent):
    """404: the object (or its namespace) does not exist."""


def classify(exc: BaseException, verb: str = "") -> ApiFailure | None:
    """The failure for `exc`, or None if it is not an API or connection error (a bug: re-raise)."""
    if isinstance(exc, ApiFailure):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _message(exc)
        if status == 409:
            return (AlreadyExists if verb == "create" or "AlreadyExists" in message else Conflict)(status, message)
        if status == 404:
            return NotFound(status, message)
        # 410 on a list: a page's continue token expired (etcd compacted); a new list goes through
        if status == 0 or status in (408, 429) or status >= 500 or (status == 410 and verb == "list"):
            return Transient(status, message, _retry_after(exc))
        return Permanent(status, message)
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return Transient(0, f"{type(exc).__name__}: {exc}")
    return None


def one_line(exc: BaseException) -> str:
    """An API or connection error as one log line (status, reason, message), never the HTTP
    headers and body the client's exceptions print; anything else as its type and message."""
    failure = classify(exc)
    text = str(failure) if failure is not None else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def repeated_failure_level(before: int) -> int:
    """The log level for a failure that follows `before` failures in a row: the first three in
    full, then one in twenty, so a loop retrying every few seconds against an API server that is
    gone for an hour does not fill the log."""
    return logging.WARNING if before < 3 or before % 20 == 0 else logging.DEBUG


def _message(exc: ApiException) -> str:
    """The apiserver's Status message (with its reason) rather than the whole response."""
    try:
        status = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict) and status.get("message"):
        return f"{status.get('reason', exc.reason)}: {status['message']}"
    return str(exc.reason or "")


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
    And Jitter"): many writers retrying after one apiserver hiccup spread out instead of
    stampeding back together. A server's Retry-After is a floor, capped by `max_retry_after`."""

    base: float = 0.2
    cap: float = 5.0
    attempts: int = 6
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base}, cap={self.cap}")
        if self.attempts < 1:
            raise ValueError(f"backoff needs at least 1 attempt, got {self.attempts}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        jitter = self.rng.uniform(0.0, min(self.cap, self.base * 2**attempt))
        if retry_after is None:
            return jitter
        return max(jitter, min(retry_after, self.max_retry_after))


__all__ = [
    "AlreadyExists",
    "ApiFailure",
    "Backoff",
    "Conflict",
    "NotFound",
    "Permanent",
    "Transient",
    "classify",
    "one_line",
    "repeated_failure_level",
]
