"""A kubeconfig for the sandbox: plain http on 127.0.0.1, a bearer token, and who to act as.

kubectl sends no bearer token over plain http (client-go reads a kubeconfig's credentials only
for https), but it does send impersonation headers. A kubeconfig for a user therefore names it
twice: by its `token` (what the official Python client sends) and by `as`, `as-groups` and
`as-user-extra` (what kubectl sends); the sandbox resolves both to the same user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scheduler.sandbox.identity import UserInfo

CONTEXT = "sandbox"


def kubeconfig(url: str, token: str | None, namespace: str = "default", user: UserInfo | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"token": token} if token else {}
    if user is not None:
        auth["as"] = user.username
        if user.uid:
            auth["as-uid"] = user.uid
        if user.groups:
            auth["as-groups"] = list(user.groups)
        if user.extra:
            auth["as-user-extra"] = {k: list(v) for k, v in user.extra.items()}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": auth}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def combined(servers: dict[str, tuple[str, str | None]], current: str, namespace: str = "default") -> dict[str, Any]:
    """One kubeconfig with a context per sandbox (by name: its URL and token), each context, its
    cluster and its user named alike, as `kubectl config view --flatten` merges them."""
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for name, (url, token) in servers.items():
        one = kubeconfig(url, token, namespace)
        out["clusters"].append({"name": name, "cluster": one["clusters"][0]["cluster"]})
        out["users"].append({"name": name, "user": one["users"][0]["user"]})
        out["contexts"].append({"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}})
    out["current-context"] = current
    out["preferences"] = {}
    return out


def write_combined(
    path: str | Path, servers: dict[str, tuple[str, str | None]], current: str, namespace: str = "default"
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(combined(servers, current, namespace), sort_keys=False))
    path.chmod(0o600)
    return path


def write(
    path: str | Path, url: str, token: str | None, namespace: str = "default", user: UserInfo | None = None
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url, token, namespace, user), sort_keys=False))
    path.chmod(0o600)
    return path
