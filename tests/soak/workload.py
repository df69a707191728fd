"""The consortia's GPU jobs: what makes a drain wait. The same jobs start and finish in every
cluster of the soak, decided from one cluster (the fault-free reference) by a seeded coin per
(instant, node), so two runs that agree see the same jobs.

A job starts on an assigned node that has none; it finishes (its pod is cleaned up, as a Job's
TTL controller would) now and then, more often on a draining node (the team checkpoints and
leaves). Jobs still running at a drain deadline are evicted by the daemon.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.keys import KEYS
from scheduler.policy import Policy
from scheduler.sandbox import SandboxServer
from scheduler.sandbox.server import resource_type

from tests.soak.cluster import gpu_pod

START = 0.5              # chance a job starts on an idle assigned node at an instant
FINISH = 0.15            # chance a running job finishes at an instant
FINISH_WHILE_DRAINING = 0.35


@dataclass
class Workload:
    seed: int
    policy: Policy
    running: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (namespace, pod) of its job
    started: int = 0
    finished: int = 0

    def step(self, index: int, reference: SandboxServer, servers: list[SandboxServer]) -> list[tuple[str, str]]:
        """Start and finish jobs for instant number `index`, as the reference cluster stands;
        returns the pods of the jobs that finished."""
        done: list[tuple[str, str]] = []
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in reference.list("pods")}
        for node in reference.list("nodes"):
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels", {})
            owner, state = labels.get(KEYS.consortium), labels.get(KEYS.node_state)
            coin = random.Random(f"{self.seed}/{index}/{name}").random()
            job = self.running.get(name)
            if job is not None and job not in pods:
                del self.running[name]  # evicted by the daemon
                job = None
            if job is not None:
                if coin < (FINISH_WHILE_DRAINING if state == "draining" else FINISH):
                    for server in servers:
                        finish(server, *job)
                    del self.running[name]
                    done.append(job)
                    self.finished += 1
            elif state == "assigned" and owner:
                consortium = self.policy.consortium(owner)
                if consortium is None or not consortium.namespaces or coin >= START:
                    continue
                gpus = int(node["status"]["allocatable"].get("nvidia.com/gpu", "0"))
                pod = gpu_pod(consortium.namespaces[0], f"train-{index:04d}-{name}", name, gpus)
                for server in servers:
                    server.put(pod)
                self.running[name] = (pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.started += 1
        return done



def finish(server: SandboxServer, namespace: str, name: str) -> None:
    """The job ended and its pod was cleaned up: straight in the store, not an API delete (the
    soak asserts the API saw none)."""
    server.store.remove(resource_type("pods").store_key, (namespace, name))
