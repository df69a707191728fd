"""The programme's clusters, connected (docs/daemon.md, Several clusters): for each cluster the
policy names, how to reach it, and once reached its reader (a watch cache) and writer.

A programme of one cluster is driven through the daemon's own connection. A programme of
several reaches each cluster by, in this order: `--cluster-kubeconfig NAME=FILE` (a kubeconfig
of its own, as the chart mounts one Secret per remote cluster), `--cluster-context NAME=CONTEXT`
(a context of --kubeconfig), `--home-cluster NAME` (the daemon's own connection: in cluster, or
the kubeconfig's current context), or else the kubeconfig's context named like the cluster. The
leader Lease and the scheduler's own Events stay in the daemon's own cluster, whichever that is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scheduler.actuator.watch import ClusterReader, Watcher
from scheduler.actuator.writer import Writer
from scheduler.cluster import Snapshot
from scheduler.policy import Policy
from scheduler.policy.errors import did_you_mean


class RouteError(ValueError):
    """A cluster of the policy cannot be reached as configured; the message says how to fix it."""


@dataclass(frozen=True)
class Route:
    """Where one cluster's API is: a kubeconfig and a context in it, or the daemon's own."""

    kubeconfig: str | None = None
    context: str | None = None
    own: bool = False  # the daemon's own connection (in cluster, or the kubeconfig's current context)

    def describe(self) -> str:
        if self.own:
            return "the daemon's own connection"
        return f"context {self.context}" if self.context else f"kubeconfig {self.kubeconfig}"


@dataclass(frozen=True)
class Routes:
    """The flags that say how to reach the clusters."""

    home: str | None = None  # --home-cluster
    contexts: dict[str, str] = field(default_factory=dict)  # --cluster-context NAME=CONTEXT
    kubeconfigs: dict[str, str] = field(default_factory=dict)  # --cluster-kubeconfig NAME=FILE

    def resolve(
        self, policy: Policy, kubeconfig: str | None, contexts: Iterable[str], problems: list[str] | None = None
    ) -> dict[str, Route]:
        """A route to every cluster of `policy`; `contexts`: the names of --kubeconfig's contexts.

        A flag naming a cluster the policy does not list, or a cluster with no route, raises
        RouteError; with `problems`, it is added there instead and the cluster left out (the
        daemon goes on, that cluster frozen: a rollout that lands the flags and the policy a
        moment apart must not stop the whole programme)."""
        names = policy.cluster_names

        def problem(message: str, frozen: bool = True) -> None:
            if problems is None:
                raise RouteError(message)
            problems.append(message + (": that cluster stays frozen until the daemon can reach it" if frozen else ""))

        for flag, given in (
            ("--home-cluster", [self.home] if self.home else []),
            ("--cluster-context", list(self.contexts)),
            ("--cluster-kubeconfig", list(self.kubeconfigs)),
        ):
            for name in given:
                if name not in names:
                    problem(
                        f"{flag} names cluster {name!r}{did_you_mean(name, names)}, which the policy does not list "
                        f"(its clusters: {', '.join(names)})" + ("; ignored" if problems is not None else ""),
                        frozen=False,
                    )
        known = set(contexts)
        routes: dict[str, Route] = {}
        for name in names:
            if name in self.kubeconfigs:
                routes[name] = Route(kubeconfig=self.kubeconfigs[name])
            elif name in self.contexts:
                if self.contexts[name] not in known:
                    problem(
                        f"--cluster-context {name}={self.contexts[name]}: the kubeconfig has no context "
                        f"{self.contexts[name]!r}{did_you_mean(self.contexts[name], known)}"
                    )
                    continue
                routes[name] = Route(kubeconfig=kubeconfig, context=self.contexts[name])
            elif name == self.home or not policy.multi_cluster:
                routes[name] = Route(kubeconfig=kubeconfig, own=True)
            elif name in known:
                routes[name] = Route(kubeconfig=kubeconfig, context=name)
            else:
                problem(
                    f"no way to reach cluster {name!r}: the kubeconfig has no context of that name; pass "
                    f"--cluster-context {name}=CONTEXT"
                    + (
                        f" or --cluster-kubeconfig {name}=FILE, or --home-cluster {name} if it is the cluster "
                        "the daemon itself runs in"
                        if problems is not None
                        else ""
                    )
                )
        return routes


@dataclass
class ClusterLink:
    """One cluster, connected: its reader and writer, and what the reconciler remembers of it."""

    name: str
    reader: ClusterReader
    writer: Writer
    api: Any = None
    watcher: Watcher | None = None
    last: Snapshot | None = None  # as last read: what the cluster counts as while it is frozen
    up: bool = True
    failures: int = 0  # reads failed in a row
    written: dict[str, str] | None = None  # allocation annotation last left on each namespace
    reported: set[str] = field(default_factory=set)  # Events written once (foreign pods)
