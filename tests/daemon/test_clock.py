"""The programme clock: real time, or N times faster from a chosen start."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.daemon.clock import Clock

from tests.builders import t


class FakeWall:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_a_scaled_clock_runs_n_times_faster_from_its_start():
    wall = FakeWall()
    clock = Clock(start=t("2026-01-14 00:00"), scale=3600, wall=wall)
    assert clock.now() == t("2026-01-14 00:00")
    wall.now += 24  # 24 real seconds = 24 programme hours
    assert clock.now() == t("2026-01-15 00:00")


def test_waits_are_converted_to_real_seconds():
    wall = FakeWall()
    clock = Clock(start=t("2026-01-14 00:00"), scale=3600, wall=wall)
    assert clock.wall_seconds_until(t("2026-01-15 00:00")) == 24
    assert clock.wall_seconds_until(t("2026-01-13 00:00")) == 0
    assert clock.wall_time_of(t("2026-01-14 01:00")) == datetime.fromtimestamp(wall.now + 1, timezone.utc)


def test_the_default_clock_is_the_real_time():
    wall = FakeWall()
    clock = Clock(wall=wall)
    wall.now += 5
    assert clock.now() == datetime.fromtimestamp(1_000_005.0, timezone.utc)


def test_a_clock_refuses_a_naive_start_or_a_non_positive_scale():
    with pytest.raises(ValueError):
        Clock(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        Clock(scale=0)
