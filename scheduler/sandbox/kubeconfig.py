"""A kubeconfig for the sandbox: plain http on 127.0.0.1 and a bearer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONTEXT = "sandbox"


def kubeconfig(url: str, token: str | None, namespace: str = "default") -> dict[str, Any]:
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write(path: str | Path, url: str, token: str | None, namespace: str = "default") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url, token, namespace), sort_keys=False))
    path.chmod(0o600)
    return path
