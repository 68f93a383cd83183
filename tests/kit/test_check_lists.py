"""CHECK constraints that list their allowed values compare with a constant list on PostgreSQL
(migration 0010): one whose list PostgreSQL builds anew at every statement cost ~35 us an
insert, five of them ~0.15 ms of a transfer's database CPU. They allow and refuse exactly what
the models' ``IN`` lists do, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from channelhub.models import RiskSighting
from channelhub.runtime import Runtime

pytestmark = pytest.mark.asyncio

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)

_CHECKS = """
    SELECT c.conrelid::regclass::text || '.' || c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
    WHERE c.contype = 'c' AND c.conrelid <> 0 AND n.nspname = current_schema()
"""


async def test_no_check_builds_its_list_per_statement(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        if (await session.connection()).dialect.name != "postgresql":
            pytest.skip("SQLite evaluates an IN list as it is")
        checks: dict[str, str] = dict((await session.execute(text(_CHECKS))).all())
    built = {name: definition for name, definition in checks.items() if "ARRAY[" in definition}
    # A new migration's ``column IN (...)`` lands here: rewrite it as 0010 does.
    assert built == {}
    constant = [name for name, definition in checks.items() if "'{" in definition]
    assert "risk_sightings.ck_risk_sightings_kind_known" in constant
    assert "transactions.ck_transactions_status_known" in constant
    assert len(constant) >= 30


@pytest.mark.parametrize("kind", ["beneficiary", "device"])
async def test_a_listed_value_is_allowed(runtime: Runtime, kind: str) -> None:
    row = {"customer_id": "c-1", "kind": kind, "value": "v-1", "first_seen": NOW}
    async with runtime.sessions() as session, session.begin():
        await session.execute(insert(RiskSighting).values(row))
    async with runtime.sessions() as session:
        kinds = (await session.execute(select(RiskSighting.kind))).scalars().all()
    assert kinds == [kind]


@pytest.mark.parametrize("kind", ["account", "Device", "device ", "", "{device}", "device,x"])
async def test_a_value_off_the_list_is_refused(runtime: Runtime, kind: str) -> None:
    row = {"customer_id": "c-1", "kind": kind, "value": "v-1", "first_seen": NOW}
    async with runtime.sessions() as session:
        with pytest.raises(IntegrityError, match="kind_known"):
            async with session.begin():
                await session.execute(insert(RiskSighting).values(row))
    async with runtime.sessions() as session:
        assert (await session.execute(select(RiskSighting.kind))).scalars().all() == []
