"""Controller metrics (the contract in docs/metrics.md), on a registry of their own so tests and the daemon
never share state. Per-consortium, per-pool and per-cluster gauges are rebuilt from each plan, so a
consortium, pool or cluster that disappears from the policy (or a missing namespace that appears)
disappears from /metrics too."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from scheduler.observability.process import add_process_metrics
from scheduler.planner.model import STATUSES, Plan

PREFIX = "gpu_scheduler"


class _PlanCollector:
    """Exports the gauges of the latest plan at scrape time (no stale label sets by design)."""

    def __init__(self) -> None:
        self.plan: Plan | None = None

    def collect(self) -> Iterator[Metric]:
        plan = self.plan
        fams = {
            "quota": GaugeMetricFamily(
                f"{PREFIX}_quota_gpus",
                "GPUs the policy gives the consortium in the stage in force",
                labels=["consortium", "gpu_model", "stage"],
            ),
            "target": GaugeMetricFamily(
                f"{PREFIX}_target_gpus",
                "GPUs the consortium should hold now (effective quota)",
                labels=["consortium", "gpu_model", "stage"],
            ),
            "allocated": GaugeMetricFamily(
                f"{PREFIX}_allocated_gpus",
                "Healthy GPUs on the consortium's assigned, non-draining nodes",
                labels=["consortium", "gpu_model", "stage"],
            ),
            "used": GaugeMetricFamily(
                f"{PREFIX}_used_gpus",
                "GPUs requested by unfinished pods on the consortium's nodes",
                labels=["consortium", "gpu_model", "stage"],
            ),
            "short": GaugeMetricFamily(
                f"{PREFIX}_short_gpus",
                "Quota the consortium cannot hold now (no open pool of the model, or pools given out); "
                'gpu_model="units" for a units quota',
                labels=["consortium", "gpu_model", "stage"],
            ),
            "draining": GaugeMetricFamily(
                f"{PREFIX}_draining_nodes", "Nodes being drained away from the consortium", labels=["consortium"]
            ),
            "deadline": GaugeMetricFamily(
                f"{PREFIX}_drain_deadline_timestamp_seconds",
                "When a draining node's remaining GPU pods are evicted",
                labels=["consortium", "node"],
            ),
            "foreign": GaugeMetricFamily(
                f"{PREFIX}_foreign_gpu_pods",
                "GPU pods on the consortium's node that are not the consortium's (another team's, or no team's)",
                labels=["consortium", "node"],
            ),
            "stale": GaugeMetricFamily(
                f"{PREFIX}_telemetry_stale_nodes",
                "Nodes whose agent telemetry is too old to use (their allocatable GPUs count)",
            ),
            "status": GaugeMetricFamily(
                f"{PREFIX}_consortium_status", "1 for the consortium's current status", labels=["consortium", "status"]
            ),
            "capacity": GaugeMetricFamily(
                f"{PREFIX}_pool_capacity_gpus",
                "Allocatable GPUs of the pool's nodes",
                labels=["pool", "gpu_model", "cluster"],
            ),
            "healthy": GaugeMetricFamily(
                f"{PREFIX}_pool_healthy_gpus",
                "Healthy GPUs on Ready nodes of the pool",
                labels=["pool", "gpu_model", "cluster"],
            ),
            "free": GaugeMetricFamily(
                f"{PREFIX}_pool_free_gpus",
                "Healthy GPUs on usable nodes nobody holds",
                labels=["pool", "gpu_model", "cluster"],
            ),
            "cluster_up": GaugeMetricFamily(
                f"{PREFIX}_cluster_up",
                "1 while the cluster's API answers; 0 while it is frozen (its reads fail, or it is not connected)",
                labels=["cluster"],
            ),
            "cluster_allocated": GaugeMetricFamily(
                f"{PREFIX}_cluster_allocated_gpus",
                "GPUs on the consortium's assigned, non-draining nodes in the cluster",
                labels=["cluster", "consortium", "gpu_model"],
            ),
            "namespace_missing": GaugeMetricFamily(
                f"{PREFIX}_namespace_missing",
                "1 for a namespace of the consortium that does not exist in a cluster where the consortium holds GPUs",
                labels=["cluster", "consortium", "namespace"],
            ),
            "stage": GaugeMetricFamily(f"{PREFIX}_stage_info", "The stage in force (1)", labels=["stage"]),
            "pending": GaugeMetricFamily(
                f"{PREFIX}_decision_pending", "1 while a started round is undecided", labels=["stage"]
            ),
            "next": GaugeMetricFamily(
                f"{PREFIX}_next_change_timestamp_seconds", "When the plan next changes by itself", labels=["what"]
            ),
        }
        if plan is not None:
            stage = plan.stage or "none"
            for c in plan.consortia:
                models = sorted(set(c.quota) | set(c.target) | set(c.allocated) | set(c.used))
                for m in models:
                    fams["quota"].add_metric([c.name, m, stage], c.quota.get(m, 0))
                    fams["target"].add_metric([c.name, m, stage], c.target.get(m, 0))
                    fams["allocated"].add_metric([c.name, m, stage], c.allocated.get(m, 0))
                    fams["used"].add_metric([c.name, m, stage], c.used.get(m, 0))
                for m, n in sorted(c.short.items()):
                    fams["short"].add_metric([c.name, m, stage], n)
                fams["draining"].add_metric([c.name], len(c.draining_nodes))
                for s in STATUSES:
                    fams["status"].add_metric([c.name, s], 1 if c.status == s else 0)
                for cluster, per_model in sorted(c.clusters.items()):
                    for m, n in sorted(per_model.items()):
                        fams["cluster_allocated"].add_metric([cluster, c.name, m], n)
            for p in plan.pools:
                fams["capacity"].add_metric([p.name, p.gpu_model, p.cluster], p.capacity_gpus)
                fams["healthy"].add_metric([p.name, p.gpu_model, p.cluster], p.healthy_gpus)
                fams["free"].add_metric([p.name, p.gpu_model, p.cluster], p.free_gpus)
            for k in plan.clusters:
                fams["cluster_up"].add_metric([k.name], 1 if k.up else 0)
            for ns in sorted(plan.missing_namespaces, key=lambda n: (n.cluster, n.consortium, n.namespace)):
                fams["namespace_missing"].add_metric([ns.cluster, ns.consortium, ns.namespace], 1)
            for name, intent in sorted(plan.node_intents.items()):
                if intent.drain_deadline is not None and intent.owner:
                    fams["deadline"].add_metric([intent.owner, name], intent.drain_deadline.timestamp())
            foreign = collections.Counter((p.holder, p.node) for p in plan.foreign_pods)
            for (holder, node), count in sorted(foreign.items()):
                fams["foreign"].add_metric([holder, node], count)
            fams["stale"].add_metric([], plan.telemetry_stale_nodes)
            fams["stage"].add_metric([stage], 1)
            fams["pending"].add_metric([plan.pending_stage or ""], 1 if plan.decision_pending else 0)
            if plan.next_change is not None:
                fams["next"].add_metric([plan.next_change.what], plan.next_change.at.timestamp())
        yield from fams.values()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time of one reconcile (read, plan, write)",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.reconcile_total = Counter(f"{PREFIX}_reconcile_total", "Reconciles by result", ["result"], registry=r)
        self.api_writes_total = Counter(
            f"{PREFIX}_api_writes_total", "Kubernetes API writes", ["resource", "verb"], registry=r
        )
        self.api_write_retries_total = Counter(
            f"{PREFIX}_api_write_retries_total",
            "Writes sent again after a conflict, throttling, a server error or a timeout",
            ["resource", "verb"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_successful_reconcile_timestamp_seconds",
            "Wall-clock time of the last reconcile that read, planned and wrote without error",
            registry=r,
        )
        self.drift_reverted_total = Counter(
            f"{PREFIX}_drift_reverted_total", "Managed fields edited by someone else and put back", ["kind"], registry=r
        )
        self.policy_valid = Gauge(f"{PREFIX}_policy_valid", "1 when the policy on disk is valid", registry=r)
        self.policy_info = Gauge(f"{PREFIX}_policy_info", "The policy in force (1)", ["sha256"], registry=r)
        self.policy_reload_errors_total = Counter(
            f"{PREFIX}_policy_reload_errors_total", "Invalid policies seen on disk", registry=r
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this replica holds the leader Lease", registry=r)
        add_process_metrics(self.registry)
        self._plans = _PlanCollector()
        r.register(self._plans)
        for result in ("success", "error"):
            self.reconcile_total.labels(result)

    def observe_plan(self, plan: Plan) -> None:
        self._plans.plan = plan

    def set_policy(self, sha256: str | None, valid: bool) -> None:
        self.policy_valid.set(1 if valid else 0)
        self.policy_info.clear()
        if sha256:
            self.policy_info.labels(sha256).set(1)
