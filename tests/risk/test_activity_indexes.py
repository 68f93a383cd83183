"""The tables risk control and limits write on every money movement carry only the indexes
something reads (migration 0007), and the velocity lookups still use them, on SQLite and
PostgreSQL: the risk activity's primary key leads with (customer_id, at), its device,
beneficiary and address indexes leave out the rows without one, and limit counters have no
index on their expiry; risk decisions have none on their time (migration 0008)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kit.ids import new_id
from channelhub.runtime import Runtime

PARTIAL = {
    f"ix_risk_activity_{column}_at": column for column in ("device", "beneficiary", "address")
}
SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def _postgres(session: AsyncSession) -> bool:
    return (await session.connection()).dialect.name == "postgresql"


async def _indexes(runtime: Runtime, table: str) -> dict[str, str]:
    async with runtime.sessions() as session:
        if await _postgres(session):
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :table"
        else:
            query = (
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"
            )
        rows = (await session.execute(text(query), {"table": table})).all()
    return {str(name): str(sql) for name, sql in rows}


async def _primary_key(runtime: Runtime, table: str) -> list[str]:
    async with runtime.sessions() as session:
        if await _postgres(session):
            query = (
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)"
            )
            rows = (await session.execute(text(query), {"table": table})).all()
            return [str(row[0]) for row in rows]
        info = (await session.execute(text(f"PRAGMA table_info({table})"))).all()
        return [str(row[1]) for row in sorted(info, key=lambda row: row[5]) if row[5]]


async def _plan(session: AsyncSession, lookup: str, params: dict[str, object]) -> str:
    if await _postgres(session):
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        rows = await session.execute(text(f"EXPLAIN {lookup}"), params)
        return "\n".join(str(row[0]) for row in rows)
    rows = await session.execute(text(f"EXPLAIN QUERY PLAN {lookup}"), params)
    return "\n".join(str(row[-1]) for row in rows)


async def test_the_activity_carries_only_indexes_that_are_read(runtime: Runtime) -> None:
    assert await _primary_key(runtime, "risk_activity") == ["customer_id", "at", "id"]
    indexes = await _indexes(runtime, "risk_activity")
    assert "ix_risk_activity_customer_at" not in indexes  # the primary key serves it
    for name, column in PARTIAL.items():
        assert f"{column} IS NOT NULL" in indexes[name], indexes[name]
    assert "ix_limit_usage_expires_on" not in await _indexes(runtime, "limit_usage")


async def test_velocity_lookups_use_the_indexes(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        device = await _plan(
            session,
            "SELECT count(*) FROM risk_activity WHERE device = :device AND at > :since",
            {"device": "phone-1", "since": SINCE},
        )
        customer = await _plan(
            session,
            "SELECT count(*) FROM risk_activity WHERE customer_id = :customer AND at > :since",
            {"customer": "c-1", "since": SINCE},
        )
    assert "ix_risk_activity_device_at" in device, device
    # PostgreSQL names the key's index; SQLite searches its automatic index of the key.
    assert "pk_risk_activity" in customer or "sqlite_autoindex_risk_activity" in customer, customer


async def test_decisions_are_found_by_transaction_and_by_time_through_their_keys(
    runtime: Runtime,
) -> None:
    indexes = await _indexes(runtime, "risk_decisions")
    assert "ix_risk_decisions_at" not in indexes  # migration 0008: nothing read by it
    assert "ix_risk_decisions_txn_id" in indexes
    # Ids are UUIDv7, in the order decisions are made: a range of them is a range of time.
    earlier, later = new_id(), new_id()
    assert earlier < later
    async with runtime.sessions() as session:
        # As each database stores a UUID: PostgreSQL's own type, SQLite's 32 hex digits.
        pg = await _postgres(session)
        first, last = (str(earlier), str(later)) if pg else (earlier.hex, later.hex)
        by_time = await _plan(
            session,
            "SELECT * FROM risk_decisions WHERE id >= :first AND id < :last",
            {"first": first, "last": last},
        )
    assert "pk_risk_decisions" in by_time or "sqlite_autoindex_risk_decisions" in by_time, by_time
