"""Hypothesis strategies shared by the wire-format tests: instants as Kubernetes objects carry them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

# RFC 3339 offsets are whole minutes; real ones run from -12:00 to +14:00
offsets = st.integers(-12 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))

# the years the programme and its clusters can live in (and a margin either side)
_EARLIEST, _LATEST = datetime(2000, 1, 1), datetime(2100, 1, 1)


def instants(*, whole_seconds: bool = False) -> st.SearchStrategy[datetime]:
    """Timezone-aware instants in any offset; `whole_seconds` for formats at second precision."""
    aware = st.datetimes(min_value=_EARLIEST, max_value=_LATEST, timezones=offsets)
    return aware.map(lambda at: at.replace(microsecond=0)) if whole_seconds else aware


# names, reasons and label values as Kubernetes spells them (the formats themselves accept any text)
words = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
