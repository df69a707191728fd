"""`SandboxServer`: the sandbox API server's lifecycle and its in-process handles for tests.

server = SandboxServer(port=0).start()
server.load_list(Path("cluster.json").read_bytes())
server.write_kubeconfig(tmp / "kubeconfig")
...
server.stop()
"""

from __future__ import annotations

import builtins
import random
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.sandbox import kubeconfig, loader, render, resources
from scheduler.sandbox.api import Api
from scheduler.sandbox.faults import Faults
from scheduler.sandbox.identity import UserInfo
from scheduler.sandbox.protocol import Context, RequestRecord
from scheduler.sandbox.resources import ResourceType
from scheduler.sandbox.selectors import parse_label_selector
from scheduler.sandbox.store import Signal, Store
from scheduler.sandbox.transport import HttpServer

BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def resource_type(resource: str, group: str | None = None) -> ResourceType:
    """ "nodes", "leases", "events" (core/v1 unless group="events.k8s.io")."""
    plural = resource.split("/", 1)[0]
    matches = [r for r in resources.ALL if r.plural == plural and (group is None or r.group == group)]
    if not matches:
        raise KeyError(f"the sandbox serves no resource {resource!r}")
    return min(matches, key=lambda r: r.group != "")


class SandboxServer:
    def __init__(
        self,
        port: int = 0,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        token: str | None = None,
        tokens: Mapping[str, UserInfo] | None = None,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        history_limit: int = 10_000,
        aggregated_discovery: bool = True,
        bookmark_interval: float = 60.0,
        builtin_namespaces: bool = True,
    ) -> None:
        self.host = host
        self.token = token
        # bearer token -> user; a request with no known token acts as identity.ADMIN
        self.tokens: dict[str, UserInfo] = dict(tokens or {})
        self.store = Store(history_limit)
        self.faults = faults if faults is not None else Faults(seed)
        self._stopping = threading.Event()
        self.ctx = Context(
            self.store,
            self.faults,
            clock or _utcnow,
            random.Random(seed),
            self._stopping,
            bookmark_interval=bookmark_interval,
        )
        self._requested_port = port
        self._aggregated = aggregated_discovery
        self._http: HttpServer | None = None
        self._thread: threading.Thread | None = None
        if builtin_namespaces:
            self.load_list(
                {
                    "kind": "List",
                    "apiVersion": "v1",
                    "items": [
                        {
                            "apiVersion": "v1",
                            "kind": "Namespace",
                            "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
                            "spec": {"finalizers": ["kubernetes"]},
                            "status": {"phase": "Active"},
                        }
                        for n in BUILTIN_NAMESPACES
                    ],
                }
            )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        if self._http is not None:
            return self
        api = Api(self.ctx, self.token, self._aggregated, lambda: f"{self.host}:{self.port}", self.tokens)
        self._http = HttpServer((self.host, self._requested_port), api)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.5},
            name=f"sandbox-apiserver:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._stopping.set()
        self.store.signal(Signal.STOP)
        closer = threading.Thread(target=self._http.shutdown, daemon=True)
        closer.start()
        while closer.is_alive():  # wake the accept loop rather than wait for its poll
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
            except OSError:
                pass
            closer.join(0.05)
        self._http.close_connections()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the sandbox server is not started")
        return self._http.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_user(self, user: UserInfo, token: str | None = None) -> str:
        """Register a bearer token for `user` (a new random one unless given); returns it."""
        token = token or secrets.token_urlsafe(24)
        self.tokens[token] = user
        return token

    def token_of(self, user: UserInfo) -> str | None:
        return next((t for t, u in self.tokens.items() if u == user), None)

    def write_kubeconfig(
        self, path: str | Path, namespace: str = "default", user: str | UserInfo | None = None
    ) -> Path:
        """A kubeconfig for this server; `user`: a token of `tokens`, or a UserInfo (a token is
        registered for it when it has none), to act as that user with kubectl and the official
        client alike (see kubeconfig.py). Without it: the server's `token`, the default user."""
        if user is None:
            return kubeconfig.write(path, self.url, self.token, namespace)
        if isinstance(user, str):
            if user not in self.tokens:
                raise KeyError(f"no user has the token {user!r}")
            token, info = user, self.tokens[user]
        else:
            token, info = self.token_of(user) or self.add_user(user), user
        return kubeconfig.write(path, self.url, token, namespace, info)

    # -- contents -----------------------------------------------------------------------------
    def load_list(self, source: loader.Source) -> int:
        """Load a `kubectl get ... -o json` List (dict, bytes, str or Path); returns the count."""
        return loader.load(self.store, source, self.ctx.clock, self.ctx.rng)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace one object directly (no admission, no faults, not counted)."""
        self.load_list({"kind": "List", "apiVersion": "v1", "items": [obj]})
        meta = obj.get("metadata") or {}
        rtype = resources.for_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        assert rtype is not None
        found = self.get(
            rtype.plural, meta["name"], meta.get("namespace", "default") if rtype.namespaced else None, rtype.group
        )
        assert found is not None
        return found

    def get(
        self, resource: str, name: str, namespace: str | None = None, group: str | None = None
    ) -> dict[str, Any] | None:
        rtype = resource_type(resource, group)
        stored = self.store.get(rtype.store_key, (namespace or "" if rtype.namespaced else "", name))
        return render.served(rtype, stored) if stored else None

    def list(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None, group: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        rtype = resource_type(resource, group)
        selector = parse_label_selector(label_selector)
        _, items = self.store.list(rtype.store_key, namespace if rtype.namespaced else None)
        return [render.served(rtype, s) for s in items if selector.matches((s.obj.get("metadata") or {}).get("labels"))]

    def count(self, resource: str, group: str | None = None) -> int:
        return self.store.count(resource_type(resource, group).store_key)

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    # -- observing and disturbing -------------------------------------------------------------
    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """Requests by (verb, resource), e.g. ("list", "nodes"), ("create", "pods/eviction")."""
        return self.ctx.requests

    @property
    def writes(self) -> Counter[tuple[str, str]]:
        """Successful write requests by (verb, resource), e.g. ("patch", "nodes")."""
        return self.ctx.writes

    @property
    def request_log(self) -> builtins.list[RequestRecord]:
        return list(self.ctx.log)

    def expire_watches(self, resources_: Iterable[str] | None = None) -> int:
        """End open watches (on these resources, or all) with a 410 Expired ERROR event."""
        storages = None if resources_ is None else {resource_type(r).store_key for r in resources_}
        return self.store.signal(Signal.EXPIRE, storages)

    def compact(self) -> int:
        """Forget the change history: watches from an older resourceVersion get 410."""
        return self.store.compact()

    def wait_for_change(self, timeout: float = 5.0) -> int:
        """Block until the next write to the store (or `timeout`); returns the resourceVersion."""
        return self.store.wait_for_change(timeout)

    def wait_for_watchers(self, count: int = 1, resource: str | None = None, timeout: float = 5.0) -> bool:
        """Block until at least `count` watches are open (on `resource`, or in all)."""
        storage = resource_type(resource).store_key if resource else None
        return self.store.wait_for_watchers(count, storage, timeout)
