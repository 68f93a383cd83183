"""The ledger's invariants, on SQLite and PostgreSQL: every entry balances, no balance goes
below its floor, holds add up, and concurrent postings never lose an update."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from channelhub.cau.service import customer_principal
from channelhub.kernel.model import AuthLevel
from channelhub.kit.money import Money
from channelhub.ledger import service as ledger
from channelhub.ledger.errors import InsufficientFunds
from channelhub.ledger.schemas import Leg
from channelhub.runtime import Runtime
from tests.support.bank import open_bank

pytestmark = pytest.mark.asyncio

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
#: Floors of the accounts under test: none below zero, a minimum balance, an overdraft.
FLOORS = (0, 0, 5_000, -20_000)
FUNDING = (100_000, 2_500, 50_000, 0)

_amount = st.integers(min_value=1, max_value=150_000)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("transfer"), st.integers(0, 3), st.integers(0, 3), _amount),
        st.tuples(st.just("hold"), st.integers(0, 3), st.just(0), _amount),
        st.tuples(st.just("capture"), st.integers(0, 20), st.integers(1, 100), st.just(0)),
        st.tuples(st.just("release"), st.integers(0, 20), st.just(0), st.just(0)),
    ),
    max_size=25,
)


@dataclass
class Model:
    """What the balances must be, computed without the database."""

    balance: list[int]
    held: list[int] = field(default_factory=lambda: [0] * len(FLOORS))
    holds: list[tuple[uuid.UUID, int, int]] = field(default_factory=list)  # (id, account, amount)

    def available(self, index: int) -> int:
        return self.balance[index] - self.held[index]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_ops)
async def test_any_sequence_of_postings_and_holds_keeps_the_ledger_whole(
    runtime: Runtime, ops: list[tuple[str, int, int, int]]
) -> None:
    tag = uuid.uuid4().hex[:12]
    codes = [f"T{tag}{index}" for index in range(len(FLOORS))]
    gl = f"GL-T{tag}"
    model = Model(balance=list(FUNDING))
    async with runtime.sessions() as session, session.begin():
        await ledger.open_account(session, code=gl, currency="CNY", gl_type="clearing", now=NOW)
        for code, floor, funding in zip(codes, FLOORS, FUNDING, strict=True):
            await ledger.open_account(
                session, code=code, currency="CNY", floor_minor=floor, now=NOW
            )
            if funding:
                await _post(session, [(code, funding), (gl, -funding)])
        for op, first, second, amount in ops:
            async with session.begin_nested() as savepoint:
                try:
                    await _apply(session, model, codes, op, first, second, amount)
                except InsufficientFunds:
                    await savepoint.rollback()
    async with runtime.sessions() as session:
        balances = await ledger.balances(session, [*codes, gl])
        problems = await ledger.verify(session)
    assert problems == []
    for index, code in enumerate(codes):
        assert balances[code].ledger_minor == model.balance[index]
        assert balances[code].held_minor == model.held[index]
        assert balances[code].available_minor >= min(FLOORS[index], FUNDING[index])
    assert sum(b.ledger_minor for b in balances.values()) == 0


async def _post(session: object, legs: list[tuple[str, int]]) -> None:
    await ledger.post_entry(
        session,  # type: ignore[arg-type]
        legs=[Leg(code, amount, "CNY") for code, amount in legs],
        kind="test",
        description="test",
        now=NOW,
        value_date=TODAY,
    )


async def _apply(
    session: object, model: Model, codes: list[str], op: str, first: int, second: int, amount: int
) -> None:
    """Apply one operation to the ledger and, if the ledger accepted it, to the model."""
    if op == "transfer" and first != second:
        enough = model.available(first) - amount >= FLOORS[first]
        try:
            await _post(session, [(codes[first], -amount), (codes[second], amount)])
        except InsufficientFunds:
            assert not enough
            raise
        assert enough
        model.balance[first] -= amount
        model.balance[second] += amount
    elif op == "hold":
        enough = model.available(first) - amount >= FLOORS[first]
        try:
            hold = await ledger.place_hold(
                session,  # type: ignore[arg-type]
                account=codes[first],
                amount=Money(amount, "CNY"),
                reference="test",
                now=NOW,
            )
        except InsufficientFunds:
            assert not enough
            raise
        assert enough
        model.held[first] += amount
        model.holds.append((hold, first, amount))
    elif op in ("capture", "release") and model.holds:
        hold, account, held = model.holds.pop(first % len(model.holds))
        model.held[account] -= held
        if op == "release":
            await ledger.release_hold(session, account=codes[account], hold_id=hold, now=NOW)  # type: ignore[arg-type]
            return
        taken = max(1, held * second // 100)
        await ledger.capture_hold(
            session,  # type: ignore[arg-type]
            account=codes[account],
            hold_id=hold,
            amount=Money(taken, "CNY"),
            counter_account=codes[(account + 1) % len(codes)],
            narrative="capture",
            now=NOW,
            value_date=TODAY,
        )
        model.balance[account] -= taken
        model.balance[(account + 1) % len(codes)] += taken


async def test_concurrent_transfers_keep_the_total_and_the_floors(runtime: Runtime) -> None:
    """200 transfers among 10 accounts at once, through the kernel: the money is all there,
    no account is below its floor, and no update was lost."""
    bank = await open_bank(runtime, generated=10)
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT a.number, u.username FROM accounts a "
                    "JOIN customer_users u ON u.customer_id = a.customer_id "
                    "WHERE u.username LIKE 'customer%' AND a.currency = 'CNY'"
                )
            )
        ).all()

    owners = {}
    async with runtime.sessions() as session:
        for number, username in rows:
            bank.principals[username] = await customer_principal(
                session, username, auth_level=AuthLevel.PASSWORD
            )
            owners[number] = username
    numbers = sorted(owners)
    assert len(numbers) == 10
    fee_account = ledger.gl_code("fee_income", "CNY")
    before = {n: await bank.balance(n) for n in numbers}
    fees_before = await _gl_balance(runtime, fee_account)

    rng = random.Random(7)
    transfers = []
    for _ in range(200):
        source, target = rng.sample(numbers, 2)
        # Up to 5,000.00: above that, transfer.internal asks for a step-up code (one per
        # 30 s per customer), which is not what this test is about.
        amount = Money(rng.randrange(100, 500_001), "CNY").to_decimal_string()
        transfers.append((owners[source], source, target, amount))
    results = await asyncio.gather(
        *(
            bank.call(
                who,
                "transfer.internal",
                {"from_account": s, "to_account": t, "amount": a, "currency": "CNY"},
            )
            for who, s, t, a in transfers
        )
    )
    codes = {result.code for result in results}
    assert codes <= {"OK", "INSUFFICIENT_FUNDS"}, codes
    assert "OK" in codes
    assert "INSUFFICIENT_FUNDS" in codes, "amounts are chosen so that some must bounce"

    after = {n: await bank.balance(n) for n in numbers}
    fees = await _gl_balance(runtime, fee_account) - fees_before
    assert sum(after.values()) + fees == sum(before.values())
    assert all(balance >= 0 for balance in after.values())
    assert fees == sum(int(r.data["fee"].replace(".", "")) for r in results if r.ok)
    assert await bank.verify() == []


async def _gl_balance(runtime: Runtime, code: str) -> int:
    async with runtime.sessions() as session:
        return (await ledger.balances(session, [code]))[code].ledger_minor


async def test_the_database_refuses_rewriting_a_posting(runtime: Runtime) -> None:
    await open_bank(runtime)
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE ledger_postings SET amount_minor = amount_minor + 1")
            )


async def test_the_database_refuses_a_balance_beyond_the_overdraft(runtime: Runtime) -> None:
    await open_bank(runtime)
    with pytest.raises(DBAPIError, match="within_overdraft"):
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE ledger_accounts SET balance_minor = -1 WHERE kind = 'customer'")
            )


async def test_postgres_refuses_an_unbalanced_entry_at_commit(runtime: Runtime) -> None:
    if runtime.db.dialect.name != "postgresql":
        pytest.skip("SQLite has no deferred triggers; the ledger's own check guards it there")
    await open_bank(runtime)
    entry = uuid.uuid4()
    async with runtime.sessions() as session:
        await session.begin()
        await session.execute(
            text(
                "INSERT INTO ledger_entries (id, kind, description, value_date, booked_at) "
                "VALUES (:id, 'test', 'one leg', CURRENT_DATE, now())"
            ),
            {"id": entry},
        )
        await session.execute(
            text(
                "INSERT INTO ledger_postings (id, entry_id, account_code, amount_minor, "
                "currency, value_date, booked_at, narrative) VALUES (:id, :entry, "
                "'GL-CLEARING-CNY', 100, 'CNY', CURRENT_DATE, now(), 'one leg')"
            ),
            {"id": uuid.uuid4(), "entry": entry},
        )
        with pytest.raises(DBAPIError, match="does not balance"):
            await session.commit()


@pytest.mark.parametrize("count", [1, 2, 4, 5, 7])
async def test_an_entry_over_few_or_many_accounts_moves_each_or_none(
    runtime: Runtime, count: int
) -> None:
    """On PostgreSQL up to four accounts are locked by one parameter each, more by an array:
    either way each account moves once, and a floor broken by one leg moves none."""
    tag = uuid.uuid4().hex[:12]
    codes = [f"M{tag}{index}" for index in range(count)]
    gl = f"GL-M{tag}"
    amounts = [1_000 * (index + 1) for index in range(count)]
    async with runtime.sessions() as session, session.begin():
        await ledger.open_account(session, code=gl, currency="CNY", gl_type="clearing", now=NOW)
        for code in codes:
            await ledger.open_account(session, code=code, currency="CNY", floor_minor=0, now=NOW)
        await _post(session, [*zip(codes, amounts, strict=True), (gl, -sum(amounts))])
    # Take back one more than the last account holds: the whole entry is refused.
    back = [-amount for amount in amounts]
    back[-1] -= 1
    with pytest.raises(InsufficientFunds):
        async with runtime.sessions() as session, session.begin():
            await _post(session, [*zip(codes, back, strict=True), (gl, -sum(back))])
    async with runtime.sessions() as session:
        balances = await ledger.balances(session, [*codes, gl])
        problems = await ledger.verify(session)
    assert problems == []
    assert [balances[code].ledger_minor for code in codes] == amounts
    assert balances[gl].ledger_minor == -sum(amounts)
