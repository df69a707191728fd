"""Who makes a request: static bearer tokens and impersonation headers, as kube-apiserver's token
file authenticator and its impersonation filter resolve them.

A request whose bearer token is known acts as that token's user; any other request acts as the
sandbox's administrator (`system:admin`, group `system:masters`), so clients that send no token
(the real kubectl over plain http never sends one) keep working. `Impersonate-User`,
`Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` then switch to another user,
as `kubectl --as` and a kubeconfig's `as`, `as-groups` and `as-user-extra` ask, which kubectl does
send over plain http. There is no RBAC: anyone may impersonate anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from scheduler.sandbox import errors

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
# what a pod-bound ServiceAccount token carries (Kubernetes >= 1.30 adds the node)
NODE_NAME = "authentication.kubernetes.io/node-name"
POD_NAME = "authentication.kubernetes.io/pod-name"

_IMPERSONATE_USER = "Impersonate-User"
_IMPERSONATE_GROUP = "Impersonate-Group"
_IMPERSONATE_UID = "Impersonate-Uid"
_IMPERSONATE_EXTRA = "impersonate-extra-"


@dataclass(frozen=True)
class UserInfo:
    """authentication.k8s.io/v1 UserInfo: what admission sees as `request.userInfo`."""

    username: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uid: str = ""

    @classmethod
    def service_account(cls, namespace: str, name: str, node: str | None = None, pod: str | None = None) -> UserInfo:
        """A ServiceAccount's token; `node`/`pod`: a token bound to a pod, as the kubelet mounts it."""
        extra: dict[str, tuple[str, ...]] = {}
        if pod:
            extra[POD_NAME] = (pod,)
        if node:
            extra[NODE_NAME] = (node,)
        return cls(
            f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
            (*service_account_groups(namespace), AUTHENTICATED),
            extra,
        )

    def cel(self) -> dict[str, Any]:
        """As `request.userInfo` in an admission request (every field present)."""
        return {
            "username": self.username,
            "uid": self.uid,
            "groups": list(self.groups),
            "extra": {k: list(v) for k, v in self.extra.items()},
        }


ADMIN = UserInfo("system:admin", ("system:masters", AUTHENTICATED))


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of a repeated header (an email.message.Message or a plain mapping)."""
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return [str(v) for v in get_all(name) or []]
    value = headers.get(name)
    return [] if value is None else [str(value)]


def authenticate(
    headers: Any, required_token: str | None, tokens: Mapping[str, UserInfo], default: UserInfo = ADMIN
) -> UserInfo:
    """The user a request acts as. `required_token`: every request must carry it (401 otherwise)."""
    token = _bearer(headers.get("Authorization") or "")
    if required_token is not None and token != required_token and token not in tokens:
        raise errors.unauthorized()
    user = tokens.get(token, default) if token else default
    return impersonate(headers, user)


def impersonate(headers: Any, user: UserInfo) -> UserInfo:
    """kube-apiserver's impersonation filter (WithImpersonation), without the authorization check."""
    names = _header_values(headers, _IMPERSONATE_USER)
    groups = [g for value in _header_values(headers, _IMPERSONATE_GROUP) for g in [value.strip()] if g]
    uids = _header_values(headers, _IMPERSONATE_UID)
    extra: dict[str, list[str]] = {}
    keys = getattr(headers, "keys", None)
    for key in dict.fromkeys(keys() if keys else ()):
        if str(key).lower().startswith(_IMPERSONATE_EXTRA):
            name = unquote(str(key)[len(_IMPERSONATE_EXTRA) :].lower())
            extra.setdefault(name, []).extend(_header_values(headers, str(key)))
    if not names:
        if groups or uids or extra:
            raise errors.ApiError(
                400,
                "BadRequest",
                "requested impersonation of groups, uid or extra without impersonating a user",
            )
        return user
    username = names[0].strip()
    if not groups and username.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = username[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        groups = list(service_account_groups(namespace))
    if username != "system:anonymous" and not {AUTHENTICATED, UNAUTHENTICATED} & set(groups):
        groups.append(AUTHENTICATED)
    return UserInfo(username, tuple(groups), {k: tuple(v) for k, v in extra.items()}, uids[0] if uids else "")
