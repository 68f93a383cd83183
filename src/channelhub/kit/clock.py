"""Wall-clock time, passed in so decision logic never reads the clock by itself."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["business_date", "utc_now"]


def utc_now() -> dt.datetime:
    """Return the current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def business_date(now: dt.datetime, time_zone: ZoneInfo) -> dt.date:
    """Return the bank's business date at ``now``: the calendar date in the bank's time zone."""
    return now.astimezone(time_zone).date()
