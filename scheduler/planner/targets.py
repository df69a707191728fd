"""Targets: how many GPUs of each model each consortium should hold (DESIGN section 4.2).

Order: winding-down holdings first; then per-model quotas, model by model, max-min fair
(water-filling, capped by quota) under shortage; then `units` quotas from what is left, each
consortium taking first the model it already holds, then the model with the most free units.
Under shortage, shares are counted in whole nodes (the model's usual node size, its granule),
so that a target can always be placed and no node is left free while a team is short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.planner.model import ACTIVE, WINDING_DOWN
from scheduler.planner.statuses import Standing
from scheduler.policy import UNITS


@dataclass(frozen=True)
class ModelCapacity:
    """Usable healthy GPUs of one model, and its granule (the usual GPUs per node)."""

    gpus: int
    granule: int


def water_fill(demands: dict[str, int], capacity: int, granule: int, prefer: dict[str, int]) -> dict[str, int]:
    """Max-min fair shares of `capacity`, each capped by its demand.

    Without shortage everyone gets its demand exactly. Under shortage, shares are whole granules;
    a granule left over after the even split goes to whoever already holds more (fewer drains),
    then by name.
    """
    demands = {c: d for c, d in demands.items() if d > 0}
    if sum(demands.values()) <= capacity:
        return dict(demands)
    granule = max(1, granule)
    want = {c: d // granule for c, d in demands.items()}
    left = capacity // granule
    give = {c: 0 for c in demands}
    open_ = sorted(want, key=lambda c: (want[c], c))
    while open_ and left > 0:
        share = left // len(open_)
        if share == 0:
            break
        still = []
        for c in open_:
            take = min(share, want[c] - give[c])
            give[c] += take
            left -= take
            if give[c] < want[c]:
                still.append(c)
        open_ = still
    for c in sorted(open_, key=lambda c: (-prefer.get(c, 0), c)):
        if left <= 0:
            break
        give[c] += 1
        left -= 1
    out = {c: g * granule for c, g in give.items()}
    # GPUs that do not make a whole granule (partly healthy nodes, odd demands) still go to
    # whoever is short, so a target is never lower than what could be placed
    spare = capacity - sum(out.values())
    for c in sorted(demands, key=lambda c: (-prefer.get(c, 0), c)):
        if spare <= 0:
            break
        extra = min(spare, demands[c] - out[c])
        out[c] += extra
        spare -= extra
    return {c: g for c, g in out.items() if g > 0}


def compute_targets(
    standings: dict[str, Standing],
    capacity: dict[str, ModelCapacity],
    held: dict[str, dict[str, int]],
    units_per_gpu: dict[str, int],
    winding_down: dict[str, dict[str, int]],
) -> dict[str, dict[str, int]]:
    """Targets by consortium and model. `held` is GPUs on usable, non-draining nodes each
    consortium holds now; `winding_down` the (already capped) wind-down targets."""
    targets: dict[str, dict[str, int]] = {c: {} for c in standings}
    left = {m: cap.gpus for m, cap in capacity.items()}

    for c, per_model in sorted(winding_down.items()):
        for m, gpus in sorted(per_model.items()):
            take = min(gpus, left.get(m, 0))
            if take > 0:
                targets[c][m] = take
                left[m] -= take

    active = {c: s for c, s in standings.items() if s.status == ACTIVE}
    for m in sorted(capacity):
        demands = {c: s.quota.get(m, 0) for c, s in active.items() if UNITS not in s.quota and s.quota.get(m, 0) > 0}
        if not demands:
            continue
        shares = water_fill(demands, left.get(m, 0), capacity[m].granule, {c: held.get(c, {}).get(m, 0) for c in demands})
        for c, gpus in shares.items():
            targets[c][m] = gpus
            left[m] -= gpus

    units_teams = {c: s.quota[UNITS] for c, s in active.items() if UNITS in s.quota and s.quota[UNITS] > 0}
    if units_teams:
        _fill_units(units_teams, left, capacity, held, units_per_gpu, targets)
    return {c: {m: g for m, g in t.items() if g > 0} for c, t in targets.items()}


def _fill_units(demands: dict[str, int], left: dict[str, int], capacity: dict[str, ModelCapacity],
                held: dict[str, dict[str, int]], units_per_gpu: dict[str, int],
                targets: dict[str, dict[str, int]]) -> None:
    total_units = sum(left[m] * units_per_gpu[m] for m in left)
    smallest = min((capacity[m].granule * units_per_gpu[m] for m in left), default=1)
    share = water_fill(demands, total_units, smallest,
                       {c: sum(g * units_per_gpu[m] for m, g in held.get(c, {}).items()) for c in demands})
    need = {c: share.get(c, 0) for c in demands}

    def take(c: str, m: str, limit_gpus: int) -> None:
        u = units_per_gpu[m]
        gran = capacity[m].granule
        gpus = min(left[m], limit_gpus, need[c] // u)
        if gpus < left[m] and gpus >= gran:
            gpus -= gpus % gran  # whole nodes, unless it takes the rest of the model
        if gpus <= 0:
            return
        targets[c][m] = targets[c].get(m, 0) + gpus
        left[m] -= gpus
        need[c] -= gpus * u

    # sticky: first the models each team already holds (the one it holds most first), as far
    # as they go, so a team stays on one model and keeps its nodes
    for c in sorted(demands):
        for m, gpus in sorted(held.get(c, {}).items(), key=lambda kv: (-kv[1] * units_per_gpu.get(kv[0], 1), kv[0])):
            if m in left and gpus > 0:
                take(c, m, math.inf)  # type: ignore[arg-type]
    # then the model with the most free units, neediest team first
    for c in sorted(demands, key=lambda c: (-need[c], c)):
        while need[c] > 0:
            options = [m for m in left if left[m] > 0 and need[c] // units_per_gpu[m] > 0]
            if not options:
                break
            m = max(options, key=lambda m: (left[m] * units_per_gpu[m], m))
            before = need[c]
            take(c, m, math.inf)  # type: ignore[arg-type]
            if need[c] == before:
                break


def wind_down_targets(standings: dict[str, Standing], held: dict[str, dict[str, int]],
                      units_per_gpu: dict[str, int], at) -> dict[str, dict[str, int]]:
    """Each winding-down team keeps base x share, per model (or in units), never above its holdings."""
    out: dict[str, dict[str, int]] = {}
    for c, s in standings.items():
        if s.status != WINDING_DOWN or s.elimination is None:
            continue
        share = s.elimination.keep_share(at)
        have = held.get(c, {})
        keep: dict[str, int] = {}
        base = s.elimination.base
        if UNITS in base:
            units = math.floor(base[UNITS] * share + 1e-9)
            for m, gpus in sorted(have.items(), key=lambda kv: (-kv[1] * units_per_gpu.get(kv[0], 1), kv[0])):
                g = min(gpus, units // units_per_gpu[m])
                if g > 0:
                    keep[m] = g
                    units -= g * units_per_gpu[m]
        else:
            for m, quota in base.items():
                g = min(have.get(m, 0), math.floor(quota * share + 1e-9))
                if g > 0:
                    keep[m] = g
        out[c] = keep
    return out
