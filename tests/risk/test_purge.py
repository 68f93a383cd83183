"""The purge deletes what no check reads any more — limit counters of periods over, risk
activity older than the longest feature window (plus a margin) — and nothing a check still
reads, on SQLite and PostgreSQL; ``channelhub purge`` runs it at once."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from sqlalchemy import insert, text

from channelhub.kit.clock import business_date
from channelhub.models import LimitUsage
from channelhub.risk.features import Activity, DatabaseFeatures
from channelhub.runtime import Runtime
from tests.support.processes import channelhub, node_env

# 10:00 in Shanghai: the bank's date is the UTC date.
NOW = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)


def _activity(customer: str, hours_ago: float) -> Activity:
    return Activity(
        uuid.uuid4(), customer, None, "0102000000000333", None, 100, "CNY",
        NOW - dt.timedelta(hours=hours_ago),
    )  # fmt: skip


async def _usage_buckets(runtime: Runtime) -> set[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(text("SELECT bucket FROM limit_usage"))
        return {str(row[0]) for row in rows}


async def test_the_purge_deletes_only_what_no_check_reads(runtime: Runtime) -> None:
    today = business_date(NOW, runtime.limits.zone)
    counters = {  # bucket -> the first day no longer in its period
        (today - dt.timedelta(days=1)).isoformat(): today,  # yesterday: over
        today.isoformat(): today + dt.timedelta(days=1),  # today: still counted
        f"{today.year:04d}-{today.month:02d}": dt.date(2027, 1, 1),  # this month
        "2026-11": dt.date(2026, 12, 1),  # last month: over
    }
    limit = uuid.uuid4()
    rows = [
        {
            "limit_id": limit,
            "subject": "c-1",
            "bucket": bucket,
            "used_minor": 100,
            "used_count": 1,
            "cap_minor": None,
            "cap_count": None,
            "expires_on": expires,
        }
        for bucket, expires in counters.items()
    ]
    async with runtime.sessions() as session, session.begin():
        await session.execute(insert(LimitUsage), rows)
    store = DatabaseFeatures()
    ages = {"old": 26.0, "edge": 24.5, "day": 23.0, "now": 0.1}  # hours
    async with runtime.sessions() as session, session.begin():
        for hours in ages.values():
            await store.record(session, _activity("c-1", hours))
    probe = _activity("c-1", 0)
    async with runtime.sessions() as session:
        before = await store.velocity(session, probe)

    purged = await runtime.purge(NOW)

    assert (purged.counters, purged.activity) == (2, 1)
    assert await _usage_buckets(runtime) == {today.isoformat(), f"{today.year}-{today.month:02d}"}
    async with runtime.sessions() as session:
        assert await store.velocity(session, probe) == before  # no window lost anything
        left = (await session.execute(text("SELECT count(*) FROM risk_activity"))).scalar()
    assert left == 3  # the 24.5-hour one stays: an hour's margin past the longest window
    again = await runtime.purge(NOW)
    assert (again.counters, again.activity) == (0, 0)


def test_the_purge_command(tmp_path: Path) -> None:
    env = node_env(f"sqlite:///{tmp_path / 'purge.db'}", tmp_path)
    assert channelhub("db", "upgrade", env=env).returncode == 0
    result = channelhub("purge", env=env)
    assert result.returncode == 0, result.stderr
    assert "deleted 0 limit counters of periods over and 0 risk activities" in result.stdout
