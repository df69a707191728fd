"""The controller process, wired: policy source, clock, leader election, the reconciler over a
watch cache, the APScheduler jobs, and /healthz /readyz /metrics. `gpu-scheduler run` builds a
`DaemonConfig` from its flags and calls `run`; it returns when `stop` is set (SIGTERM, Ctrl-C)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scheduler.actuator.connect import (
    SERVICE_ACCOUNT_NAMESPACE,
    ConnectError,
    connect,
    context_names,
    context_namespace,
)
from scheduler.actuator.memory import few_malloc_arenas
from scheduler.actuator.retry import one_line
from scheduler.actuator.watch import ClusterReader, Watcher
from scheduler.actuator.writer import Writer
from scheduler.cluster import Keys
from scheduler.daemon.clock import Clock
from scheduler.daemon.leader import LeaderElector
from scheduler.daemon.links import ClusterLink, RouteError, Routes
from scheduler.daemon.metrics import Metrics
from scheduler.daemon.policy_source import PolicySource
from scheduler.daemon.progress import progress_line
from scheduler.daemon.reconciler import Reconciler
from scheduler.daemon.service import Daemon
from scheduler.observability.http import serve
from scheduler.planner.nodes import label_keys

log = logging.getLogger(__name__)

LEASE_NAME = "gpu-scheduler-leader"


@dataclass(frozen=True)
class DaemonConfig:
    policy: str
    keys: Keys
    kubeconfig: str | None = None
    in_cluster: bool = False
    dry_run: bool = False
    metrics_port: int = 9090
    metrics_host: str = "0.0.0.0"  # every interface in a pod; 127.0.0.1 under --simulate
    start: datetime | None = None  # programme time to start from (None: now)
    time_scale: float = 1.0
    reconcile_every: float = 30.0
    progress_every: float = 0.0  # seconds between progress lines on stdout (0: none)
    lease_namespace: str | None = None  # None: the pod's namespace in cluster, else the kubeconfig context's
    routes: Routes = field(default_factory=Routes)  # how to reach each cluster of the policy (links.py)
    create_namespaces: bool = False


def load_source(config: DaemonConfig) -> PolicySource | None:
    """The policy folder, read once; None (after saying why on stderr) when it is invalid at start."""
    source = PolicySource(config.policy)
    source.reload()
    if source.policy is None:
        print(str(source.error), file=sys.stderr)
        return None
    return source


class SetupError(Exception):
    """The daemon cannot start as configured; the message (one line) says how to fix it."""


def lease_namespace(config: DaemonConfig) -> str:
    """Where the leader Lease and the scheduler's own Events live: --lease-namespace, else the
    pod's own namespace in cluster, else the kubeconfig context's namespace ("default" when the
    context names none), as kubectl chooses."""
    if config.lease_namespace:
        return config.lease_namespace
    if config.in_cluster:
        try:
            return Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
        except OSError as err:
            raise SetupError(f"cannot read this pod's namespace ({err}); pass --lease-namespace") from None
    return context_namespace(config.kubeconfig)


def require_namespace(api: Any, namespace: str) -> None:
    """Fail at once, in one line, when the Lease's namespace does not exist: a daemon that
    retried there would never lead and never write. Asked with a list (the controller may list
    namespaces; it need not get one)."""
    from kubernetes import client

    try:
        found = client.CoreV1Api(api).list_namespace(field_selector=f"metadata.name={namespace}", _request_timeout=10)
    except Exception as err:  # noqa: BLE001 - any failure to ask is a failure to start, said in one line
        raise SetupError(f"cannot check that namespace {namespace!r} exists: {one_line(err)}") from None
    if not found.items:
        raise SetupError(
            f"namespace {namespace!r} (for the leader Lease and the scheduler's Events) does not exist: "
            f"create it (kubectl create namespace {namespace}) or pass --lease-namespace"
        )


def connect_links(config: DaemonConfig, source: PolicySource, own: Any, keys: Keys) -> dict[str, ClusterLink]:
    """A link to each cluster of a programme of several (links.py), or none for a programme of one
    reached through the daemon's own connection. `own`: that connection's API client."""
    policy = source.policy
    routes = config.routes
    if policy is None or (not policy.multi_cluster and not routes.contexts and not routes.kubeconfigs):
        return {}
    try:
        contexts = [] if config.in_cluster else context_names(config.kubeconfig)
        problems: list[str] = []
        resolved = routes.resolve(policy, config.kubeconfig, contexts, problems)
        for problem in problems:
            log.warning("%s", problem)
        if not resolved:
            raise SetupError("; ".join(problems))
        links = {}
        for name, route in resolved.items():
            api = own if route.own else connect(route.kubeconfig, False, route.context)
            links[name] = ClusterLink(name, ClusterReader(api, keys), Writer(api, dry_run=config.dry_run), api=api)
            log.info("cluster %s: through %s", name, route.describe())
    except (RouteError, ConnectError) as err:
        raise SetupError(str(err)) from None
    return links


def run(config: DaemonConfig, source: PolicySource, stop: threading.Event) -> int:
    few_malloc_arenas()  # before the watch threads and the writer pool start
    clock = Clock(start=config.start, scale=config.time_scale)
    api = connect(config.kubeconfig, config.in_cluster)
    namespace = lease_namespace(config)
    require_namespace(api, namespace)
    metrics = Metrics()
    elector = LeaderElector(api, namespace, LEASE_NAME, f"{socket.gethostname()}-{os.getpid()}")
    # nodes are decoded keeping only the labels planning reads (the policy's selectors and topology
    # keys): the cache of a fleet stays small; a policy that reads others widens it (Reconciler)
    keys = config.keys.reading(label_keys(source.policy)) if source.policy is not None else config.keys
    reader = ClusterReader(api, keys)
    links = connect_links(config, source, api, keys)
    # a dry run never campaigns for the Lease: it must not take leadership from the real daemon,
    # and it logs every write it would make as if it led
    reconciler = Reconciler(
        source,
        reader,
        clock,
        metrics,
        Writer(api, dry_run=config.dry_run),
        is_leader=(lambda: True) if config.dry_run else (lambda: elector.leading),
        links=links,
        events_namespace=namespace,
        create_namespaces=config.create_namespaces,
    )
    daemon = Daemon(
        reconciler,
        source,
        clock,
        metrics,
        reconcile_every=config.reconcile_every,
        namespace=namespace,
        somebody_leads=(lambda: True) if config.dry_run else (lambda: elector.somebody_leads),
    )
    try:
        http = serve(metrics.registry, daemon.ready, config.metrics_host, config.metrics_port)
    except OSError as err:
        raise SetupError(str(err)) from None

    def leadership(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        if leading:
            daemon.soon("became leader")

    elector.on_change = leadership
    if not config.dry_run:
        elector.start()
    daemon.start()
    # watches wake reconciles and, once a fresh list has shown the cache caught up with this
    # replica's writes, serve them (ClusterReader)
    watchers = []
    for link in links.values() or [ClusterLink("", reader, reconciler.writer, api=api)]:
        link.watcher = Watcher(link.api, link.reader.keys, on_change=daemon.changed).start()
        link.reader.cache = link.watcher
        watchers.append(link.watcher)
    scale = f" x{config.time_scale}" if config.time_scale != 1 else ""
    print(
        f"gpu-scheduler running: metrics on :{http.port}/metrics; programme time {clock.now().isoformat()}{scale}",
        flush=True,
    )
    while not stop.wait(config.progress_every or None):
        last = reconciler.last
        if last is not None and last.plan is not None:
            print(progress_line(last.plan, clock.now()), flush=True)
    for watcher in watchers:
        watcher.stop()
    daemon.stop()  # waits for an in-flight reconcile to finish its writes
    elector.stop(release=True)
    http.stop()
    return 0
