"""Which GPUs a node can count on: health rules over NVML readings and XID events.

Modelled on what the NVIDIA device plugin treats as fatal: any XID is critical except the
application-level ones it skips by default (13, 31, 43, 45, 68, 109: a user program faulted, not
the GPU). Double-bit ECC errors, a row-remap failure or a pending remap/retirement, and a lost GPU
are unhealthy too. Thresholds are configurable (`HealthRules`).

Unlike the device plugin, a GPU can come back: it is healthy again only after a quiet period with
no new critical event (or at once when a driver reset is seen and nothing is still wrong). Flapping
is damped: each time a GPU turns unhealthy again within `flap_window`, its quiet period doubles
(up to `max_quiet`). Conditions that persist (a lost GPU, a pending remap) keep it unhealthy for as
long as they last, and restart the quiet period when they clear.

Pure: state in, readings and an instant in, state out. The agent owns the clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.telemetry.nvml import GpuReading

DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})


@dataclass(frozen=True)
class HealthRules:
    ignored_xids: frozenset[int] = DEFAULT_IGNORED_XIDS
    critical_xids: frozenset[int] = frozenset()  # always critical, even if also ignored
    dbe_threshold: int = 1  # volatile double-bit ECC errors that make a GPU unhealthy
    sbe_threshold: int | None = None  # volatile single-bit ECC errors (None: never)
    quiet_period: timedelta = timedelta(minutes=10)
    flap_window: timedelta = timedelta(hours=1)
    max_quiet: timedelta = timedelta(hours=6)

    def critical(self, xid: int) -> bool:
        return xid in self.critical_xids or xid not in self.ignored_xids


@dataclass
class GpuHealth:
    """What the agent remembers about one GPU between readings."""

    healthy: bool = True
    reason: str = ""
    last_bad: datetime | None = None  # last critical event or still-present bad condition
    turned_bad: deque[datetime] = field(default_factory=deque)  # when it went unhealthy, within flap_window
    volatile: dict[tuple[str, str], int] = field(default_factory=dict)  # to see a reset in the counters

    def quiet_needed(self, rules: HealthRules) -> timedelta:
        flaps = max(0, len(self.turned_bad) - 1)
        factor: int = 2**flaps  # flaps >= 0, so an int
        return min(rules.max_quiet, rules.quiet_period * factor)


def conditions(g: GpuReading, rules: HealthRules) -> str:
    """A reason string for what is wrong with the GPU right now, '' if nothing."""
    if g.lost:
        return "lost"
    if rules.dbe_threshold and g.ecc.get(("double", "volatile"), 0) >= rules.dbe_threshold:
        return "ecc-dbe"
    if rules.sbe_threshold is not None and g.ecc.get(("single", "volatile"), 0) >= rules.sbe_threshold:
        return "ecc-sbe"
    if g.remapped_rows_failure:
        return "row-remap-failure"
    if g.remapped_rows_pending:
        return "row-remap-pending"
    if g.retired_pages_pending:
        return "page-retirement-pending"
    return ""


def _reset_seen(state: GpuHealth, g: GpuReading) -> bool:
    """Volatile ECC counters only go down when the driver reloads (or the GPU resets)."""
    return any(g.ecc.get(k, v) < v for k, v in state.volatile.items() if k[1] == "volatile")


def update(
    state: GpuHealth, g: GpuReading, xids: list[int], now: datetime, rules: HealthRules, reset: bool = False
) -> GpuHealth:
    """The GPU's health after this reading and these XIDs. `reset`: the NVML session was
    re-established (a driver reset), which clears what XIDs alone caused."""
    reset = reset or _reset_seen(state, g)
    if not g.lost:
        state.volatile = {k: v for k, v in g.ecc.items() if k[1] == "volatile"}

    bad = conditions(g, rules)
    critical = [x for x in xids if rules.critical(x)]
    if critical:
        bad = bad or f"xid-{critical[-1]}"
    if bad:
        if state.healthy:
            # the flap count is taken when the GPU fails, and held while it waits: failures that
            # left the window during the wait must not shorten it
            while state.turned_bad and now - state.turned_bad[0] > rules.flap_window:
                state.turned_bad.popleft()
            state.turned_bad.append(now)
        state.healthy, state.reason, state.last_bad = False, bad, now
        return state
    if state.healthy:
        return state
    if reset or state.last_bad is None or now - state.last_bad >= state.quiet_needed(rules):
        state.healthy, state.reason = True, ""
    return state
