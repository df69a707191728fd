"""Reading a cluster into a Snapshot: the four lists planning needs, read raw and decoded with
msgspec straight into the snapshot model (scheduler.cluster.decode). The client's model classes
would cost seconds and gigabytes on 10,000 nodes; planning needs a few fields of each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import urllib3
from kubernetes import client

from scheduler.actuator.connect import REQUEST_TIMEOUT
from scheduler.actuator.retry import classify
from scheduler.cluster import Keys, Snapshot, decode_snapshot


class _ListMeta(msgspec.Struct, frozen=True):
    resourceVersion: str = ""


class _ListHead(msgspec.Struct, frozen=True):
    metadata: _ListMeta = _ListMeta()


_LIST_HEAD = msgspec.json.Decoder(_ListHead)

# the four lists planning reads, by the plural the sandbox and metrics use
LISTS: dict[str, Callable[[client.CoreV1Api], Callable[..., Any]]] = {
    "nodes": lambda core: core.list_node,
    "namespaces": lambda core: core.list_namespace,
    "resourcequotas": lambda core: core.list_resource_quota_for_all_namespaces,
    "pods": lambda core: core.list_pod_for_all_namespaces,
}


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    # with _preload_content=False the client returns urllib3's response, unread
    resp: urllib3.BaseHTTPResponse = call(
        *args, _preload_content=False, _request_timeout=kwargs.pop("_request_timeout", REQUEST_TIMEOUT), **kwargs
    )
    try:
        return resp.data
    finally:
        resp.release_conn()


def list_raw(api: client.ApiClient, resource: str) -> tuple[bytes, str]:
    """One list as the apiserver sent it, and its resourceVersion."""
    data = raw(LISTS[resource](client.CoreV1Api(api)))
    return data, _LIST_HEAD.decode(data).metadata.resourceVersion


def read_snapshot(api: client.ApiClient, keys: Keys) -> tuple[Snapshot, str]:
    """The cluster as planning sees it, and the node list's resourceVersion. Failures are
    scheduler.actuator.retry errors (Transient: read again later; Permanent: fix the RBAC)."""
    parts: dict[str, Snapshot] = {}
    rv = ""
    for resource in LISTS:
        try:
            data, version = list_raw(api, resource)
        except Exception as exc:
            failure = classify(exc, "list")
            if failure is None:
                raise
            raise failure from exc
        parts[resource] = decode_snapshot(data, keys)
        if resource == "nodes":
            rv = version
    return Snapshot(
        nodes=parts["nodes"].nodes,
        namespaces=parts["namespaces"].namespaces,
        quotas=parts["resourcequotas"].quotas,
        pods=parts["pods"].pods,
    ), rv
