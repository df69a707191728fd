"""What the transport hands the API and gets back, and the state every verb shares."""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from scheduler.sandbox.errors import ApiError, bad_request
from scheduler.sandbox.faults import Faults
from scheduler.sandbox.identity import ADMIN, UserInfo
from scheduler.sandbox.store import Store, encode

JSON = "application/json"


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive lookups (an email.message.Message does)
    body: bytes = b""
    user: UserInfo = ADMIN  # who it acts as (identity.authenticate)
    warnings: list[str] = field(default_factory=list)  # sent back as `Warning` headers

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return value if value is not None else default

    def json_body(self) -> Any:
        if not self.body:
            raise bad_request("the request body is empty")
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as e:
            raise bad_request(f"error decoding the request body as JSON: {e}") from None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # a chunked watch; b"" items are keep-alive ticks


def json_response(status: int, obj: Any, content_type: str = JSON) -> Response:
    return Response(status, encode(obj), content_type)


def error_response(err: ApiError) -> Response:
    return Response(err.code, encode(err.status()), JSON, dict(err.headers))


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    accept: str
    content_type: str
    status: int
    verb: str = ""
    resource: str = ""


@dataclass
class Context:
    """The state the verbs share: the store, the clock, the randomness, the counters."""

    store: Store
    faults: Faults
    clock: Callable[[], datetime]
    rng: random.Random
    stopping: threading.Event
    bookmark_interval: float = 60.0
    poll_interval: float = 0.5
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=2000))
    counter_lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, counter: Counter[tuple[str, str]], verb: str, resource: str) -> None:
        with self.counter_lock:
            counter[(verb, resource)] += 1
