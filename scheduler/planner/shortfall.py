"""Shortfalls: the part of an active team's quota that no plan could give it now, and why.

A target is what can be held (targets.py): the quota, unless the pools cannot give it. What the
target leaves out of the quota is a shortfall, and people must see it (plan, status, the
`short-gpus` label, an Event, a metric) rather than find a team's GPUs gone without a word.
The reason names the cause an operator can act on: no open pool of the model (a lease ended, a
pool not open yet, or none in the policy), pools fully given out (shared with other teams), or
whole nodes (the next node would exceed the quota).

Not a shortfall: the gap between target and allocation while nodes drain from another team
(`ConsortiumPlan.shortfall`, transient by nature).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.planner.model import ACTIVE
from scheduler.planner.statuses import Standing
from scheduler.planner.targets import ModelCapacity
from scheduler.policy import UNITS, Policy


@dataclass(frozen=True)
class Shortfall:
    amount: dict[str, int]  # per GPU model in GPUs, or {"units": n} for a units quota
    reason: str

    @property
    def gpus(self) -> int:
        """What the `short-gpus` label says: GPUs short (for a units quota, units)."""
        return sum(self.amount.values())


def shortfalls(
    policy: Policy,
    standings: Mapping[str, Standing],
    targets: Mapping[str, Mapping[str, int]],
    capacity: Mapping[str, ModelCapacity],
    closed: Mapping[str, str],
    frozen_free: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Shortfall]:
    """Shortfalls of the active teams whose target falls below their quota.

    `closed`: pools that cannot be given out now, and why (nodes.pool_windows). `frozen_free`:
    per model, free GPUs in clusters that are not answering, by cluster (given to nobody while
    frozen): when a team is short of a model that has some, that is the reason to act on."""
    units = {m: policy.units(m) for m in policy.models}
    given: dict[str, int] = {m: 0 for m in capacity}
    for per_model in targets.values():
        for m, gpus in per_model.items():
            given[m] = given.get(m, 0) + gpus
    left = {m: capacity[m].gpus - given.get(m, 0) for m in capacity}
    sharing = {m: sorted(c for c, t in targets.items() if t.get(m, 0) > 0) for m in capacity}

    out: dict[str, Shortfall] = {}
    for c, s in sorted(standings.items()):
        if s.status != ACTIVE:
            continue
        target = targets.get(c, {})
        amount: dict[str, int] = {}
        reasons: list[str] = []
        if UNITS in s.quota:
            held = sum(g * units[m] for m, g in target.items())
            if s.quota[UNITS] > held:
                amount[UNITS] = s.quota[UNITS] - held
                open_models = [m for m in sorted(capacity) if capacity[m].gpus > 0]
                stuck = _stuck(frozen_free, None)
                if stuck:
                    reasons.append(stuck)
                elif not open_models:
                    reasons.append("no pool is open" + _why_closed(policy, None, closed))
                elif any(left[m] > 0 for m in open_models):
                    reasons.append("whole nodes: the next free node would exceed the units quota")
                else:
                    reasons.append(_given_out("all open pools", sorted({t for m in open_models for t in sharing[m]})))
        else:
            for m, quota in sorted(s.quota.items()):
                have = target.get(m, 0)
                if quota <= have:
                    continue
                amount[m] = quota - have
                stuck = _stuck(frozen_free, m)
                if stuck:
                    reasons.append(stuck)
                elif capacity.get(m) is None or capacity[m].gpus == 0:
                    reasons.append(f"no {m} pool is open" + _why_closed(policy, m, closed))
                elif left[m] > 0:
                    reasons.append(f"whole nodes: the next free {m} node would exceed the quota")
                else:
                    reasons.append(_given_out(f"the {m} pools", sharing[m]))
        if amount:
            out[c] = Shortfall(amount, "; ".join(reasons))
    return out


def _stuck(frozen_free: Mapping[str, Mapping[str, int]] | None, model: str | None) -> str:
    """The reason when free GPUs (of `model`, or of any model) sit in frozen clusters, else ""."""
    parts = [
        f"free {m} GPUs ({', '.join(f'{g} in {k}' for k, g in sorted(per.items()) if g > 0)})"
        for m, per in sorted((frozen_free or {}).items())
        if (model is None or m == model) and any(g > 0 for g in per.values())
    ]
    return " and ".join(parts) + " are in a cluster that is not answering: frozen until it does" if parts else ""


def _why_closed(policy: Policy, model: str | None, closed: Mapping[str, str]) -> str:
    pools = [p for p in policy.pools if model is None or p.gpuModel == model]
    if not pools:
        return f" (the policy has no {model} pool)" if model else " (the policy has no pool)"
    why = [closed[p.name] for p in pools if p.name in closed]
    return f" ({'; '.join(why)})" if why else " (its nodes are unusable: NotReady, cordoned or unhealthy)"


def _given_out(what: str, teams: list[str]) -> str:
    return f"{what} are fully given out (shared by {', '.join(teams)})" if teams else f"{what} are fully given out"
