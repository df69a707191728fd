"""An API client for one cluster: from a kubeconfig (a context in it), or from a pod's service
account. Retries are ours (retry.py), never the HTTP library's."""

from __future__ import annotations

import urllib3
from kubernetes import client, config

FIELD_MANAGER = "gpu-scheduler"  # the owner of our fields in managedFields
REQUEST_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds: a hung apiserver becomes a Transient failure
WRITE_CONCURRENCY = 8  # writes the Writer sends at once (writer.py)
# HTTP connections kept open to the API server: every concurrent write, the four long-lived
# watches (nodes, namespaces, ResourceQuotas, pods), leader election, and the reconcile's own
# reads and Events. The client's default (5 per CPU) is smaller than that on a small machine, and
# urllib3 then warns "Connection pool is full, discarding connection" on every extra one.
CONNECTION_POOL_SIZE = WRITE_CONCURRENCY + 4 + 4


class ConnectError(ValueError):
    """No API server to talk to: the kubeconfig is missing or unusable, or this is not a pod.
    The message says which, in one line."""


def connect(kubeconfig: str | None = None, in_cluster: bool = False, context: str | None = None) -> client.ApiClient:
    """An API client from a kubeconfig (default: $KUBECONFIG or ~/.kube/config) or, in a pod,
    from its service account."""
    try:
        return _connect(kubeconfig, in_cluster, context)
    except (config.ConfigException, OSError) as err:
        where = "in-cluster configuration" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
        raise ConnectError(f"cannot use the {where}: {' '.join(str(err).split())}") from None


def _connect(kubeconfig: str | None, in_cluster: bool, context: str | None) -> client.ApiClient:
    if in_cluster:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # unannotated in kubernetes
    else:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]  # unannotated in kubernetes
            config_file=kubeconfig, context=context, client_configuration=cfg
        )
    cfg.connection_pool_maxsize = max(CONNECTION_POOL_SIZE, cfg.connection_pool_maxsize or 0)
    # urllib3 would otherwise retry a 429/503 GET itself, sleeping its Retry-After for real and
    # uncapped, before our code sees anything: retries and their backoff are ours (retry.py)
    cfg.retries = urllib3.Retry(
        total=3,
        connect=3,
        read=0,
        status=0,
        other=0,
        redirect=0,
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    return client.ApiClient(cfg)


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def context_names(kubeconfig: str | None = None) -> list[str]:
    """The names of a kubeconfig's contexts ([] when it has none or cannot be read: whoever
    needs one says so, naming the cluster)."""
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]  # unannotated in kubernetes
    except (config.ConfigException, OSError):
        return []
    return [str(c.get("name")) for c in contexts or [] if c.get("name")]


def context_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace a kubeconfig's context names (the current one unless `context`), "default"
    when it names none: what kubectl would use."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]  # unannotated in kubernetes
    except (config.ConfigException, OSError) as err:
        raise ConnectError(
            f"cannot use the kubeconfig {kubeconfig or '(default)'}: {' '.join(str(err).split())}"
        ) from None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")
