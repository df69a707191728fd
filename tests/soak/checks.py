"""What must hold after every step of the soak, read straight from the sandbox's store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler import DOMAIN
from tests.keys import KEYS
from scheduler.planner import Plan
from scheduler.sandbox import SandboxServer

PREFIX = DOMAIN + "/"
DRAIN_KEYS = (KEYS.drain_started, KEYS.drain_deadline, KEYS.drain_reason)
OUR_TAINTS = (KEYS.consortium, KEYS.draining_taint)
HARD = "requests.nvidia.com/gpu"


def ownership_problems(nodes: Iterable[dict[str, Any]]) -> list[str]:
    """Each node has at most one holder, and its label and taints say the same."""
    problems = []
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels", {})
        owner, state = labels.get(KEYS.consortium), labels.get(KEYS.node_state)
        taints = node.get("spec", {}).get("taints") or []
        held = [t.get("value") for t in taints if t.get("key") == KEYS.consortium]
        draining = [t for t in taints if t.get("key") == KEYS.draining_taint]
        if len(held) > 1:
            problems.append(f"{name} has {len(held)} consortium taints: {held}")
        if owner and held != [owner]:
            problems.append(f"{name} is labelled for {owner} but its consortium taints say {held}")
        if not owner and held:
            problems.append(f"{name} carries no consortium label but is tainted for {held}")
        if state in ("assigned", "draining") and not owner:
            problems.append(f"{name} is {state} without a consortium")
        if (state == "draining") != bool(draining):
            problems.append(f"{name} is {state} with {len(draining)} draining taints")
    return problems


def plan_problems(plan: Plan) -> list[str]:
    """No node is in two consortia's node lists of one plan."""
    holders: dict[str, list[str]] = {}
    for c in plan.consortia:
        for node in list(c.nodes) + list(c.draining_nodes):
            holders.setdefault(node, []).append(c.name)
    return [f"plan at {plan.at.isoformat()} gives {node} to {', '.join(who)}"
            for node, who in sorted(holders.items()) if len(who) > 1]


def deletes(server: SandboxServer) -> dict[str, int]:
    """Every DELETE the API server was asked for, failed or not (evictions are creates)."""
    return {f"{verb} {resource}": n for (verb, resource), n in server.requests.items()
            if verb in ("delete", "deletecollection")}


@dataclass
class DeadlineLedger:
    """Drain clocks, as seen from outside: (node, drain-started) -> deadline, across restarts.

    A drain's deadline is written once: a later look that finds the same drain with another
    deadline, or a node that never stopped draining with another start, is a reset."""

    deadlines: dict[tuple[str, str], str] = field(default_factory=dict)
    draining: dict[str, str] = field(default_factory=dict)  # node -> drain-started, while it drains

    def observe(self, nodes: Iterable[dict[str, Any]], where: str) -> list[str]:
        problems = []
        now_draining: dict[str, str] = {}
        for node in nodes:
            name = node["metadata"]["name"]
            ann = node["metadata"].get("annotations", {})
            started, deadline = ann.get(KEYS.drain_started), ann.get(KEYS.drain_deadline)
            if not started or not deadline:
                continue
            now_draining[name] = started
            seen = self.deadlines.setdefault((name, started), deadline)
            if seen != deadline:
                problems.append(f"{where}: {name}'s drain started {started} had deadline {seen}, now {deadline}")
            before = self.draining.get(name)
            if before is not None and _instant(before) != _instant(started):
                problems.append(f"{where}: {name} kept draining but its drain-started moved {before} -> {started}")
        self.draining = now_draining
        return problems


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class PodLedger:
    """Pods leave only when a job finishes (the soak removes those) or by eviction: a GPU pod on
    a node whose drain deadline has passed. Pods without GPUs never leave."""

    known: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    evicted: int = 0

    def forget(self, namespace: str, name: str) -> None:
        self.known.pop((namespace, name), None)

    def observe(self, nodes_: Iterable[dict[str, Any]], pods_: Iterable[dict[str, Any]], now: datetime,
                where: str) -> list[str]:
        problems = []
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods_}
        nodes = {n["metadata"]["name"]: n for n in nodes_}
        for key, pod in self.known.items():
            if key in pods:
                continue
            node = nodes.get(pod["spec"].get("nodeName", ""), {"metadata": {}})
            ann = node["metadata"].get("annotations", {})
            deadline = ann.get(KEYS.drain_deadline)
            gpus = any("nvidia.com/gpu" in (c.get("resources", {}).get("requests") or {})
                       for c in pod["spec"].get("containers", []))
            if not gpus:
                problems.append(f"{where}: pod {key[0]}/{key[1]} without GPUs disappeared")
            elif deadline is None or _instant(deadline) > now:
                problems.append(f"{where}: GPU pod {key[0]}/{key[1]} disappeared from "
                                f"{pod['spec'].get('nodeName')} before its drain deadline ({deadline})")
            else:
                self.evicted += 1
        self.known = pods
        return problems


def end_state(server: SandboxServer, namespaces: Iterable[str]) -> dict[str, Any]:
    """What the daemon manages, as the cluster holds it: node labels and drain annotations,
    namespace labels and allocation annotation, ResourceQuota hard values; and the GPU pods."""
    state: dict[str, Any] = {}
    for node in server.list("nodes"):
        meta = node["metadata"]
        ours = {k: v for k, v in meta.get("labels", {}).items() if k.startswith(PREFIX)}
        ours.update({k: v for k, v in meta.get("annotations", {}).items() if k in DRAIN_KEYS})
        taints = sorted((t["key"], t.get("value", "")) for t in node.get("spec", {}).get("taints") or []
                        if t["key"] in OUR_TAINTS)
        state[f"node {meta['name']}"] = {**ours, "taints": taints}
    for ns in namespaces:
        meta = (server.get("namespaces", ns) or {"metadata": {}})["metadata"]
        ours = {k: v for k, v in meta.get("labels", {}).items() if k.startswith(PREFIX)}
        allocation = meta.get("annotations", {}).get(KEYS.allocation)
        state[f"namespace {ns}"] = {**ours, "allocation": json.loads(allocation) if allocation else None}
        quota = server.get("resourcequotas", "gpu-scheduler", ns)
        state[f"quota {ns}"] = (quota or {}).get("spec", {}).get("hard", {}).get(HARD)
    state["gpu pods"] = sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in server.list("pods")
                               if p["metadata"]["name"].startswith("train-"))
    return state


def differences(expected: dict[str, Any], got: dict[str, Any], limit: int = 12) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key), got.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            detail = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
            out.append(f"{key}: {detail} (fault-free, soak)")
        else:
            out.append(f"{key}: fault-free {a!r}, soak {b!r}")
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])
