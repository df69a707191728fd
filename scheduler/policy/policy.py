"""The merged, validated policy: one Program and its Stages, with the lookups planning needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.policy.errors import PolicyIssue
from scheduler.policy.models import Cluster, Consortium, Pool, Program, Stage, WindDown

# the one cluster of a programme whose policy lists none: the cluster the daemon connects to
DEFAULT_CLUSTER = "default"


@dataclass(frozen=True)
class Policy:
    program: Program
    stages: tuple[Stage, ...]  # sorted by start
    sha256: str = ""
    files: tuple[str, ...] = field(default=())
    warnings: tuple[PolicyIssue, ...] = field(default=(), compare=False)  # legal, but worth a word (capacity.py)

    @property
    def name(self) -> str:
        return self.program.metadata.name

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.program.spec.timezone)

    @property
    def consortia(self) -> list[Consortium]:
        return self.program.spec.consortia

    @property
    def pools(self) -> list[Pool]:
        return self.program.spec.pools

    @property
    def clusters(self) -> list[Cluster]:
        """The clusters the pools are in; a programme that lists none has one, named DEFAULT_CLUSTER."""
        return self.program.spec.clusters or [Cluster(name=DEFAULT_CLUSTER)]

    @property
    def cluster_names(self) -> list[str]:
        return [c.name for c in self.clusters]

    @property
    def multi_cluster(self) -> bool:
        """More than one cluster: node names are qualified with their cluster's (cluster/node)."""
        return len(self.program.spec.clusters) > 1

    def cluster_of(self, pool: Pool) -> str:
        """The cluster a pool's nodes are in (validation made sure a programme of several names it)."""
        return pool.cluster or self.clusters[0].name

    def pools_in(self, cluster: str) -> list[Pool]:
        return [p for p in self.pools if self.cluster_of(p) == cluster]

    @property
    def wind_down(self) -> WindDown:
        return self.program.spec.windDown

    def units(self, model: str) -> int:
        return self.program.spec.gpuModels[model].units

    @property
    def models(self) -> list[str]:
        return sorted(self.program.spec.gpuModels)

    def consortium(self, name: str) -> Consortium | None:
        return next((c for c in self.consortia if c.name == name), None)

    def stage_wind_down(self, stage: Stage) -> WindDown:
        """The wind-down rules for eliminations at `stage`'s start (its override, else the default)."""
        if stage.spec.windDown is None:
            return self.wind_down
        return stage.spec.windDown.over(self.wind_down)

    def stage_started(self, at: datetime) -> Stage | None:
        """Latest stage with start <= at, decided or not."""
        current = None
        for stage in self.stages:
            if stage.spec.start <= at:
                current = stage
        return current

    def decided_stages(self) -> list[Stage]:
        return [s for s in self.stages if not s.spec.pending]
