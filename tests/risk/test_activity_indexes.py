"""The risk activity's device, beneficiary and address indexes leave out the rows without one
(migration 0007), and the velocity lookups still use them, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from channelhub.runtime import Runtime

PARTIAL = {
    f"ix_risk_activity_{column}_at": column for column in ("device", "beneficiary", "address")
}


async def _definitions(runtime: Runtime) -> dict[str, str]:
    async with runtime.sessions() as session:
        if (await session.connection()).dialect.name == "postgresql":
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'risk_activity'"
        else:
            query = (
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'risk_activity' AND sql IS NOT NULL"
            )
        return {str(name): str(sql) for name, sql in (await session.execute(text(query))).all()}


async def test_the_party_indexes_leave_out_rows_without_the_party(runtime: Runtime) -> None:
    definitions = await _definitions(runtime)
    for name, column in PARTIAL.items():
        assert f"{column} IS NOT NULL" in definitions[name], definitions[name]
    # The customer is always there: its index has every row.
    assert "WHERE" not in definitions["ix_risk_activity_customer_at"].upper()


async def test_a_lookup_by_device_uses_its_partial_index(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        lookup = "SELECT count(*) FROM risk_activity WHERE device = :device AND at > :since"
        params = {"device": "phone-1", "since": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
        if (await session.connection()).dialect.name == "postgresql":
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                str(row[0]) for row in await session.execute(text(f"EXPLAIN {lookup}"), params)
            )
        else:
            plan = "\n".join(
                str(row[-1])
                for row in await session.execute(text(f"EXPLAIN QUERY PLAN {lookup}"), params)
            )
    assert "ix_risk_activity_device_at" in plan, plan
