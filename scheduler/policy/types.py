"""Scalars of the policy language: durations, instants, DNS-1123 names, timezones.

Plain functions and patterns, shared by the runtime model (models.py) and the schema that explains
a refusal (schema.py). Naive dates and datetimes are read in the programme's timezone, which the
caller passes in.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.policy.limits import MAX_YEAR, MIN_YEAR

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
GPU_MODEL_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,40}[A-Za-z0-9])?$"
DEFAULT_TIMEZONE = ZoneInfo("Asia/Seoul")
# what a bad date or time says it should look like (policy files and command-line flags alike)
INSTANT_FORMATS = "use 2026-08-01, 2026-08-01T09:00 or 2026-08-01T09:00:00+09:00 (no offset: the programme's timezone)"


def parse_duration(value: Any) -> timedelta:
    """`30s`, `15m`, `2h`, `14d`, `2w`, or combinations such as `1d12h`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("a duration is a string such as 30s, 15m, 2h or 14d")
    text = str(value).strip()
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 30s, 15m, 2h, 14d")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out += f"{n}{unit}"
    return out


def whole_string(pattern: str) -> str:
    """`pattern` for Python's re.search: `$` there also matches before a final newline, which
    pydantic's (Rust) regex does not, so both must refuse "name\\n" alike."""
    return pattern.removesuffix("$") + r"\Z"


def parse_instant(value: Any, zone: ZoneInfo | None = None) -> datetime:
    """A date or datetime; naive ones are in `zone` (the programme's timezone). Always aware."""
    zone = zone or DEFAULT_TIMEZONE
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                parsed = datetime.combine(date.fromisoformat(text), time())
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as err:
            why = "" if str(err).startswith("Invalid isoformat string") else f" ({err})"
            raise ValueError(f"{text!r} is not a valid date or datetime{why}; {INSTANT_FORMATS}") from None
    else:
        raise ValueError(f"expected a date or datetime; {INSTANT_FORMATS}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"{parsed.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR} a programme can be about")
    return parsed


def zone_named(value: Any) -> ZoneInfo:
    """The IANA timezone `value` names; ValueError if it names none."""
    try:
        return ZoneInfo(str(value))
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds for a bad key
        raise ValueError(f"{value!r} is not an IANA timezone such as Asia/Seoul") from None


def check_zone(value: Any) -> str:
    """An IANA timezone name, as given."""
    zone_named(value)
    return str(value)


UTC = UTC
