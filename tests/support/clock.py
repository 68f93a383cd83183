"""The engine's clock in tests: a fixed time of the bank's day, so that a test and the code it
drives agree on the business date and no test straddles the bank's midnight."""

from __future__ import annotations

import datetime as dt

from channelhub.kit.clock import utc_now
from channelhub.runtime import Runtime

__all__ = ["at_bank_time"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at_bank_time(runtime: Runtime, hour: int, minute: int = 30, *, days: int = 0) -> None:
    """Make the engine's clock read ``hour:minute`` in Shanghai, ticking on: today's, or
    ``days`` from today (-1: yesterday)."""
    start = utc_now()
    day = start.astimezone(SHANGHAI).date() + dt.timedelta(days=days)
    fixed = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI).astimezone(dt.UTC)
    runtime.engine.clock = lambda: fixed + (utc_now() - start)
