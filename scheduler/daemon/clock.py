"""The programme's clock. Real time in production; `--time-scale N` runs it N times faster from
`--start`, so a newcomer can watch a whole programme play out in minutes. Everything that asks
"what time is it" in the daemon asks a Clock, never the system directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Clock:
    """Programme time = start + (wall time elapsed since creation) x scale."""

    start: datetime | None = None
    scale: float = 1.0
    wall: Callable[[], float] = time.time
    _wall0: float = field(init=False)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError("time scale must be positive")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware")
        self._wall0 = self.wall()

    def now(self) -> datetime:
        elapsed = self.wall() - self._wall0
        if self.start is None:
            return datetime.fromtimestamp(self._wall0 + elapsed * self.scale, UTC)
        return self.start + timedelta(seconds=elapsed * self.scale)

    def wall_seconds_until(self, at: datetime) -> float:
        """How long to wait in real seconds until programme time reaches `at` (0 if past)."""
        return max(0.0, (at - self.now()).total_seconds() / self.scale)

    def wall_time_of(self, at: datetime) -> datetime:
        """The real (UTC) instant at which programme time reaches `at`: what a scheduler arms."""
        return datetime.fromtimestamp(self.wall() + self.wall_seconds_until(at), UTC)
