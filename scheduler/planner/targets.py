"""Targets: how many GPUs of each model each consortium should hold (docs/planning.md, Targets).

Order: winding-down holdings first; then per-model quotas, model by model, max-min fair
(water-filling, capped by quota) under shortage; then `units` quotas from what is left, each
consortium taking first the model it already holds, then the model with the most free units.

Shares are counted in whole nodes: the capacity of a model is the list of its usable nodes'
healthy GPUs, and water-filling hands out nodes, each to the team that has least so far and can
still take it. So a target never over-commits a pool, can always be placed, no node stays free
while a team could take it, and re-planning a placed plan gives the same targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from scheduler.planner.model import ACTIVE, WINDING_DOWN
from scheduler.planner.statuses import Standing
from scheduler.policy import UNITS

Slot = tuple[int, str, str | None]  # one usable node: (healthy GPUs, node name, who holds it now)


@dataclass(frozen=True)
class ModelCapacity:
    """Usable nodes of one model: their healthy GPUs, names and holders."""

    slots: tuple[Slot, ...]

    @property
    def gpus(self) -> int:
        return sum(slot[0] for slot in self.slots)


def _order(slots: Iterable[Slot]) -> list[Slot]:
    """Largest first, then by node name: an order that does not depend on who holds what."""
    return sorted(slots, key=lambda s: (-s[0], s[1]))


def water_fill(demands: dict[str, int], slots: list[Slot]) -> tuple[dict[str, int], list[Slot]]:
    """Max-min fair shares of the nodes `slots`, each capped by its demand, in whole nodes.

    Returns the shares and the nodes nobody took. Each node goes, largest first (then by node
    name), to the team with the fewest GPUs so far that can take it whole, ties by team name.
    Without shortage everyone gets its demand rounded down to whole nodes (a quota of 20 on
    8-GPU nodes is a target of 16: what can actually be held). Shares depend only on demands and
    node sizes, never on who holds which node, so a plan once placed gives the same shares again
    (preferring holders in ties was tried: with nodes of mixed health it flip-flops).
    """
    demands = {c: d for c, d in demands.items() if d > 0}
    got = {c: 0 for c in demands}
    left: list[Slot] = []
    for slot in _order(slots):
        size = slot[0]
        fits = [c for c in demands if got[c] + size <= demands[c]]
        if not fits:
            left.append(slot)
            continue
        c = min(fits, key=lambda c: (got[c], c))
        got[c] += size
    return {c: g for c, g in got.items() if g > 0}, left


def _set_aside(slots: list[Slot], owner: str, amount: int) -> tuple[int, list[Slot]]:
    """Set aside `owner`'s own nodes worth at most `amount` GPUs (largest first): how many GPUs
    that is, and the slots left for everyone else."""
    out = []
    kept = 0
    for slot in _order(slots):
        if slot[2] == owner and kept + slot[0] <= amount:
            kept += slot[0]
        else:
            out.append(slot)
    return kept, out


def compute_targets(
    standings: dict[str, Standing],
    capacity: dict[str, ModelCapacity],
    units_per_gpu: dict[str, int],
    winding_down: dict[str, dict[str, int]],
) -> dict[str, dict[str, int]]:
    """Targets by consortium and model; `winding_down` holds the (already capped) wind-down targets."""
    targets: dict[str, dict[str, int]] = {c: {} for c in standings}
    free = {m: _order(cap.slots) for m, cap in capacity.items()}

    for c, per_model in sorted(winding_down.items()):
        for m, gpus in sorted(per_model.items()):
            if gpus > 0 and m in free:
                # whole nodes of its own, so what it keeps is exactly what it is left with
                targets[c][m], free[m] = _set_aside(free[m], c, gpus)

    active = {c: s for c, s in standings.items() if s.status == ACTIVE}
    for m in sorted(capacity):
        demands = {c: s.quota.get(m, 0) for c, s in active.items() if UNITS not in s.quota and s.quota.get(m, 0) > 0}
        if not demands:
            continue
        shares, free[m] = water_fill(demands, free[m])
        for c, gpus in shares.items():
            targets[c][m] = gpus

    units_teams = {c: s.quota[UNITS] for c, s in active.items() if UNITS in s.quota and s.quota[UNITS] > 0}
    if units_teams:
        _fill_units(units_teams, free, units_per_gpu, targets)
    return {c: {m: g for m, g in t.items() if g > 0} for c, t in targets.items()}


def _fill_units(
    demands: dict[str, int],
    free: dict[str, list[Slot]],
    units_per_gpu: dict[str, int],
    targets: dict[str, dict[str, int]],
) -> None:
    """Units quotas: a max-min fair share in units over every model left, then nodes to fill it:
    first the team's own nodes, then more of a model it already holds, then the model with the
    most free units. Keeping own nodes first is what makes a placed plan give the same targets."""
    in_units = [(size * units_per_gpu[m], name, owner) for m, slots in free.items() for size, name, owner in slots]
    shares, _ = water_fill(demands, in_units)
    need = {c: shares.get(c, 0) for c in demands}

    def take(c: str, m: str, own_only: bool) -> None:
        u = units_per_gpu[m]
        kept = []
        for slot in sorted(free[m], key=lambda s: (s[2] != c, -s[0], s[1])):
            size, _, owner = slot
            if size * u <= need[c] and (owner == c or not own_only):
                targets[c][m] = targets[c].get(m, 0) + size
                need[c] -= size * u
            else:
                kept.append(slot)
        free[m] = _order(kept)

    holds = {c: {m for m, slots in free.items() if any(s[2] == c for s in slots)} for c in demands}
    for c in sorted(demands):
        for m in sorted(free):
            take(c, m, own_only=True)
    # the order teams pick in depends on their shares, not on what they hold now: a plan applied
    # in part (a crash mid-batch) and planned again must pick in the same order as the whole plan
    for c in sorted(demands, key=lambda c: (-shares.get(c, 0), c)):
        tried: set[str] = set()
        while need[c] > 0:
            options = [m for m in free if m not in tried and any(s[0] * units_per_gpu[m] <= need[c] for s in free[m])]
            if not options:
                break
            m = max(options, key=lambda m: (m in holds[c], sum(s[0] for s in free[m]) * units_per_gpu[m], m))
            tried.add(m)
            take(c, m, own_only=False)


def wind_down_targets(
    standings: dict[str, Standing], held: dict[str, dict[str, int]], units_per_gpu: dict[str, int], at: datetime
) -> dict[str, dict[str, int]]:
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
