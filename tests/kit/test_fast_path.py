"""The asyncpg fast path runs in the session's own transaction: it commits, rolls back and
follows savepoints exactly as statements sent through the session do (both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.kit.db import FastStatement, create_engine, fetch, make_sessionmaker
from channelhub.models import NumberSequence

Factory = async_sessionmaker[AsyncSession]
_table = cast(Table, NumberSequence.__table__)
_INSERT = FastStatement(
    insert(_table)
    .values(name=bindparam("name"), next_value=bindparam("value"))
    .returning(_table.c.name, _table.c.next_value)
)


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(database_url, pool_size=2)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _names(factory: Factory) -> list[str]:
    async with factory() as session:
        rows = await session.execute(select(_table.c.name).order_by(_table.c.name))
        return [row.name for row in rows]


async def test_rows_read_like_sqlalchemy_rows(session_factory: Factory) -> None:
    async with session_factory() as session, session.begin():
        rows = await fetch(session, _INSERT, {"name": "seq.a", "value": 7})
    assert [(row.name, row.next_value) for row in rows] == [("seq.a", 7)]
    assert await _names(session_factory) == ["seq.a"]


async def test_a_rolled_back_session_takes_fast_statements_with_it(
    session_factory: Factory,
) -> None:
    session: AsyncSession
    async with session_factory() as session:
        await session.begin()
        await fetch(session, _INSERT, {"name": "seq.gone", "value": 1})
        await session.rollback()
        # The next transaction of the same session gets a fresh connection, not the old one.
        async with session.begin():
            await fetch(session, _INSERT, {"name": "seq.kept", "value": 2})
    assert await _names(session_factory) == ["seq.kept"]


async def test_a_savepoint_rolled_back_undoes_only_its_own_statements(
    session_factory: Factory,
) -> None:
    async with session_factory() as session, session.begin():
        await fetch(session, _INSERT, {"name": "seq.outer", "value": 1})
        savepoint = await session.begin_nested()
        await fetch(session, _INSERT, {"name": "seq.inner", "value": 2})
        await savepoint.rollback()
        await fetch(session, _INSERT, {"name": "seq.after", "value": 3})
    assert await _names(session_factory) == ["seq.after", "seq.outer"]


async def test_fast_and_session_statements_share_one_transaction(
    session_factory: Factory,
) -> None:
    async with session_factory() as session:
        await session.begin()
        await fetch(session, _INSERT, {"name": "seq.fast", "value": 1})
        seen = await session.execute(select(_table.c.next_value).where(_table.c.name == "seq.fast"))
        assert seen.scalar_one() == 1
        await session.rollback()
    assert await _names(session_factory) == []
