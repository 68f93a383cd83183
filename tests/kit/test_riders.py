"""Riders (kit.db.Rider): work sent with the transaction's next statement instead of alone.

Against PostgreSQL (riders run there only): a rider's changes and answer are those it would
have alone, whether a SELECT carries it, it goes out alone when asked for, or it cannot go
with another (clashing bind names, a carrier that is not a plain SELECT); the carrier's rows
are exactly its own; a rollback takes a carried rider's changes with it, and a rider never
sent is forgotten with its transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sqlalchemy import Integer, String, Table, bindparam, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.kit import db
from channelhub.kit.db import FastStatement, Rider, create_engine, fetch, make_sessionmaker, ride
from channelhub.models import NumberSequence

Factory = async_sessionmaker[AsyncSession]
_table = cast(Table, NumberSequence.__table__)
_PREFIX = "rider."

_BY_PREFIX = FastStatement(
    select(_table.c.name, _table.c.next_value).where(_table.c.name.like(bindparam("b_like")))
)
_ORDERED = FastStatement(
    select(_table.c.name)
    .where(_table.c.name.like(bindparam("b_like")))
    .order_by(_table.c.name.desc())
)
_MAKE = FastStatement(
    insert(_table).values(name=bindparam("b_made"), next_value=literal(1)).returning(_table.c.name)
)


def _rider(tag: str, value: int, *, bind: str | None = None) -> Rider:
    """A rider that inserts sequence ``rider.<tag>`` at ``value`` and answers how many
    ``rider.*`` sequences there were before, ``value`` and the name. ``bind``: the name's
    bind name (by default one of its own)."""
    name, number = bind or f"r_{tag}_name", f"r_{tag}_value"
    made = (
        insert(_table)
        .values(name=bindparam(name), next_value=bindparam(number, type_=Integer))
        .cte(f"made_{tag}")
    )
    row = select(
        select(func.count())
        .where(_table.c.name.like(_PREFIX + "%"))
        .scalar_subquery()
        .label("before"),
        bindparam(number, type_=Integer).label("value"),
        bindparam(name, type_=String).label("named"),
    )
    params = {name: f"{_PREFIX}{tag}", number: value}
    return Rider(("test", tag, bind), row, params, [made])


@pytest.fixture
async def factory(postgres_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(postgres_url, pool_size=2)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await session.execute(delete(_table).where(_table.c.name.like(_PREFIX + "%")))
    yield sessions
    await engine.dispose()


async def _sequences(factory: Factory) -> dict[str, int]:
    async with factory() as session:
        rows = await session.execute(
            select(_table.c.name, _table.c.next_value).where(_table.c.name.like(_PREFIX + "%"))
        )
        return {row.name: row.next_value for row in rows}


async def _carried(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record each statement the riders went with (None: alone)."""
    seen: list[Any] = []
    send, carry = db._send, db._carry

    async def sending(driver: Any, riders: Any) -> None:
        seen.append(None)
        await send(driver, riders)

    async def carrying(driver: Any, statement: Any, params: Any, riders: Any) -> Any:
        seen.append(statement)
        return await carry(driver, statement, params, riders)

    monkeypatch.setattr(db, "_send", sending)
    monkeypatch.setattr(db, "_carry", carrying)
    return seen


async def test_a_select_carries_the_riders_and_returns_only_its_own_rows(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with factory() as session, session.begin():
        await fetch(session, _MAKE, {"b_made": f"{_PREFIX}base"})
    seen = await _carried(monkeypatch)
    first, second = _rider("one", 5), _rider("two", 7)
    async with factory() as session, session.begin():
        ride(session, first)
        ride(session, second)
        rows = await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})
        # Every part of one statement sees the database as it began: the carrier does not
        # see the riders' rows, and neither rider sees the other's.
        assert [(row.name, row.next_value) for row in rows] == [(f"{_PREFIX}base", 1)]
        assert (await first.result(session))._asdict() == {
            "before": 1,
            "value": 5,
            "named": f"{_PREFIX}one",
        }
        assert (await second.result(session)).value == 7
    assert seen == [_BY_PREFIX]
    assert await _sequences(factory) == {
        f"{_PREFIX}base": 1,
        f"{_PREFIX}one": 5,
        f"{_PREFIX}two": 7,
    }


async def test_a_carrier_that_finds_nothing_still_brings_the_answers(factory: Factory) -> None:
    rider = _rider("lone", 3)
    async with factory() as session, session.begin():
        ride(session, rider)
        assert await fetch(session, _BY_PREFIX, {"b_like": "nothing-like-this%"}) == []
        assert (await rider.result(session)).value == 3
    assert await _sequences(factory) == {f"{_PREFIX}lone": 3}


async def test_riders_asked_for_before_any_statement_go_together_once(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = await _carried(monkeypatch)
    first, second = _rider("a", 1), _rider("b", 2)
    async with factory() as session, session.begin():
        ride(session, first)
        ride(session, second)
        assert (await second.result(session)).value == 2
        assert (await first.result(session)).value == 1  # already here: nothing sent again
        await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})  # carries nothing
    assert seen == [None]
    assert await _sequences(factory) == {f"{_PREFIX}a": 1, f"{_PREFIX}b": 2}


async def test_riders_whose_names_clash_go_one_by_one(factory: Factory) -> None:
    # Both bind "b_like" to their own values, as does the carrier: none may go together.
    first, second = _rider("x", 1, bind="b_like"), _rider("y", 2, bind="b_like")
    async with factory() as session, session.begin():
        ride(session, first)
        ride(session, second)
        rows = await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})
        # Sent before the carrier, alone: it sees them.
        assert sorted(row.name for row in rows) == [f"{_PREFIX}x", f"{_PREFIX}y"]
        assert (await first.result(session)).named == f"{_PREFIX}x"
        assert (await second.result(session)).named == f"{_PREFIX}y"


@pytest.mark.parametrize("carrier", [_ORDERED, _MAKE], ids=["ordered", "insert"])
async def test_a_statement_that_cannot_carry_runs_after_the_riders(
    factory: Factory, carrier: FastStatement
) -> None:
    rider = _rider("first", 9)
    async with factory() as session, session.begin():
        ride(session, rider)
        rows = await fetch(session, carrier, {"b_like": _PREFIX + "%", "b_made": f"{_PREFIX}z"})
        if carrier is _ORDERED:
            assert [row.name for row in rows] == [f"{_PREFIX}first"]
        else:
            assert [row.name for row in rows] == [f"{_PREFIX}z"]
        assert (await rider.result(session)).value == 9


async def test_a_rollback_takes_a_carried_rider_with_it(factory: Factory) -> None:
    rider = _rider("gone", 4)
    session: AsyncSession
    async with factory() as session:
        await session.begin()
        ride(session, rider)
        await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})
        assert (await rider.result(session)).value == 4
        await session.rollback()
    assert await _sequences(factory) == {}


async def test_a_rider_never_sent_is_forgotten_with_its_transaction(factory: Factory) -> None:
    session: AsyncSession
    async with factory() as session:
        await session.begin()
        await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})
        ride(session, _rider("never", 1))
        await session.rollback()
        async with session.begin():  # the next transaction of the same session
            await fetch(session, _BY_PREFIX, {"b_like": _PREFIX + "%"})
    assert await _sequences(factory) == {}
