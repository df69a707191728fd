"""Reading a cluster into a Snapshot: the four lists planning needs, read raw and decoded with
msgspec straight into the snapshot model (scheduler.cluster.decode). The client's model classes
would cost seconds and gigabytes on 10,000 nodes; planning needs a few fields of each.

Lists are read in pages of PAGE objects (`limit` and `continue`, as client-go's reflector does):
one page's bytes and their decoding are all that is ever held at once, so reading 50,000 nodes
costs a few megabytes at a time instead of the whole list, and the memory it used is reused for
the next page rather than left scattered through the heap."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import urllib3
from kubernetes import client

from scheduler.actuator.connect import REQUEST_TIMEOUT
from scheduler.actuator.retry import classify
from scheduler.cluster import Keys, Snapshot, decode_snapshot

PAGE = 500  # objects per list request: client-go's default page size


class _ListMeta(msgspec.Struct, frozen=True, rename={"continue_": "continue"}):
    resourceVersion: str = ""
    continue_: str = ""


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


# what each of them is, as decoding is told (an API server's list items carry no kind of their own)
LIST_KINDS = {
    "nodes": "NodeList",
    "namespaces": "NamespaceList",
    "resourcequotas": "ResourceQuotaList",
    "pods": "PodList",
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


def list_pages(api: client.ApiClient, resource: str, page: int = PAGE) -> Iterator[tuple[bytes, str]]:
    """One list, page by page as the apiserver sends it, each with the list's resourceVersion
    (every page of a list reports the same one). A continue token that expires midway (410) is
    raised like any failure: the caller lists again from the start."""
    call = LISTS[resource](client.CoreV1Api(api))
    token = ""
    while True:
        data = raw(call, limit=page, **({"_continue": token} if token else {}))
        meta = _LIST_HEAD.decode(data).metadata
        yield data, meta.resourceVersion
        token = meta.continue_
        if not token:
            return


def list_decoded(api: client.ApiClient, resource: str, keys: Keys, page: int = PAGE) -> tuple[Snapshot, str]:
    """One list decoded into a Snapshot (of that resource alone), and its resourceVersion."""
    parts: list[Snapshot] = []
    rv = ""
    for data, version in list_pages(api, resource, page):
        parts.append(decode_snapshot(data, keys, LIST_KINDS[resource]))
        rv = version
    return merged(parts), rv


def merged(parts: list[Snapshot]) -> Snapshot:
    if len(parts) == 1:
        return parts[0]
    return Snapshot(
        nodes=tuple(n for p in parts for n in p.nodes),
        namespaces={k: v for p in parts for k, v in p.namespaces.items()},
        quotas={k: v for p in parts for k, v in p.quotas.items()},
        pods=tuple(pod for p in parts for pod in p.pods),
    )


def read_snapshot(api: client.ApiClient, keys: Keys) -> tuple[Snapshot, str]:
    """The cluster as planning sees it, and the node list's resourceVersion. Failures are
    scheduler.actuator.retry errors (Transient: read again later; Permanent: fix the RBAC)."""
    parts: dict[str, Snapshot] = {}
    rv = ""
    for resource in LISTS:
        try:
            parts[resource], version = list_decoded(api, resource, keys)
        except Exception as exc:
            failure = classify(exc, "list")
            if failure is None:
                raise
            raise failure from exc
        if resource == "nodes":
            rv = version
    return Snapshot(
        nodes=parts["nodes"].nodes,
        namespaces=parts["namespaces"].namespaces,
        quotas=parts["resourcequotas"].quotas,
        pods=parts["pods"].pods,
    ), rv
