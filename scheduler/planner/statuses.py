"""Who is in the programme at an instant: the stage in force, pending decisions, and each
consortium's status with the quota it is measured against (the rules of docs/planning.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.planner.model import ACTIVE, ELIMINATED, INELIGIBLE, PENDING, WINDING_DOWN
from scheduler.policy import Policy, Stage, WindDown, WindDownMode


@dataclass(frozen=True)
class Elimination:
    """A consortium cut at a stage boundary: its base quota and the wind-down that applies."""

    stage: str
    at: datetime
    base: dict[str, int]  # the quota in the previous decided stage (per model, or units)
    wind_down: WindDown

    @property
    def grace_end(self) -> datetime:
        return self.at + self.wind_down.gracePeriod

    def keep_share(self, at: datetime) -> float:
        """Share of the base quota kept at `at` (before capping by holdings)."""
        if at >= self.grace_end:
            return 0.0
        mode = self.wind_down.mode
        if mode == WindDownMode.hold:
            return 1.0
        if mode == WindDownMode.step:
            return self.wind_down.keepPercent / 100.0
        grace = self.wind_down.gracePeriod.total_seconds()
        return max(0.0, (self.grace_end - at).total_seconds() / grace) if grace > 0 else 0.0


@dataclass(frozen=True)
class Standing:
    """One consortium's place in the programme at an instant."""

    status: str
    quota: dict[str, int]  # its quota in the stage in force (active, or pending until `from`)
    eligible_from: datetime | None = None
    elimination: Elimination | None = None


@dataclass(frozen=True)
class StageInForce:
    stage: Stage | None  # the latest decided stage with start <= at
    pending: Stage | None  # a later stage that has started but is undecided
    wind_down: WindDown  # wind-down rules for drains ordered by this stage


def stage_in_force(policy: Policy, at: datetime) -> StageInForce:
    decided: Stage | None = None
    pending: Stage | None = None
    for stage in policy.stages:
        if stage.spec.start > at:
            break
        if stage.spec.pending:
            pending = stage
        else:
            decided, pending = stage, None
    wd = policy.stage_wind_down(decided) if decided is not None else policy.wind_down
    return StageInForce(decided, pending, wd)


def eliminations(policy: Policy) -> list[tuple[str, Elimination]]:
    """Every elimination the decided stages imply, in order: a consortium eligible in one decided
    stage and not in the next is cut at the next one's start."""
    out: list[tuple[str, Elimination]] = []
    previous: Stage | None = None
    for stage in policy.decided_stages():
        listed = {e.consortium for e in stage.spec.eligibility()}
        if previous is not None:
            before = {e.consortium for e in previous.spec.eligibility()}
            for name in sorted(before - listed):
                out.append(
                    (
                        name,
                        Elimination(
                            stage.metadata.name,
                            stage.spec.start,
                            dict(previous.spec.quotas.get(name, {})),
                            policy.stage_wind_down(stage),
                        ),
                    )
                )
        previous = stage
    return out


def standings(policy: Policy, at: datetime) -> dict[str, Standing]:
    """Status of every consortium at `at`. A consortium listed in the stage in force is active (or
    pending); otherwise its latest elimination up to `at` decides (a re-admitted team cut again has
    a later one); never listed and never cut means ineligible."""
    decided = [s for s in policy.decided_stages() if s.spec.start <= at]
    cut: dict[str, Elimination] = {name: elim for name, elim in eliminations(policy) if elim.at <= at}

    out: dict[str, Standing] = {}
    current = decided[-1] if decided else None
    entries = {e.consortium: e for e in current.spec.eligibility()} if current else {}
    quotas = current.spec.quotas if current else {}
    for c in policy.consortia:
        entry = entries.get(c.name)
        if entry is not None:
            if entry.from_ is not None and entry.from_ > at:
                out[c.name] = Standing(PENDING, dict(quotas.get(c.name, {})), eligible_from=entry.from_)
            else:
                out[c.name] = Standing(ACTIVE, dict(quotas.get(c.name, {})), eligible_from=entry.from_)
        elif c.name in cut:
            elim = cut[c.name]
            status = WINDING_DOWN if at < elim.grace_end else ELIMINATED
            out[c.name] = Standing(status, {}, elimination=elim)
        else:
            out[c.name] = Standing(INELIGIBLE, {})
    return out


def linear_steps(elim: Elimination, granule_gpus: int, units_per_gpu: dict[str, int]) -> list[datetime]:
    """Instants at which a linear wind-down's target crosses a whole node: its change points."""
    if elim.wind_down.mode != WindDownMode.linear:
        return []
    grace = elim.wind_down.gracePeriod
    out: set[datetime] = set()
    for model, amount in elim.base.items():
        # a per-model base counts GPUs; a units base counts units, and the smallest node in units
        # is the granule of the model with the fewest units per GPU
        step = granule_gpus if model in units_per_gpu else granule_gpus * min(units_per_gpu.values(), default=1)
        if amount <= 0 or step <= 0:
            continue
        k = amount // step
        while k > 0 and len(out) < 10_000:
            # target = amount * share < k*step  <=>  share < k*step/amount
            share = (k * step) / amount
            if share <= 1:
                out.add(elim.at + timedelta(seconds=int(grace.total_seconds() * (1 - share)) + 1))
            k -= 1
    return sorted(out)
