"""The controls' statements ride with the transfer's first statement (kit.db.Rider).

On PostgreSQL, transfer.internal sends the limit booking and the risk features with its
accounts read, one statement for three; the answers, the counters, the activity and the
decisions are what the steps make when they send their own statements (as they do on SQLite,
and where no rider is registered); a transfer that fails after the riders went leaves
nothing of them.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from channelhub.demo.controls import seed_controls
from channelhub.kernel.steps import registry
from channelhub.kit import db
from channelhub.kit.clock import utc_now
from channelhub.kit.money import Money
from channelhub.ledger import service as ledger
from tests.risk.conftest import decisions
from tests.support.bank import Bank


@pytest.fixture
async def bank(bank: Bank) -> Bank:
    """The guarded demo bank with the demo's bank limits too (as ``channelhub demo``)."""
    await seed_controls(bank.runtime.sessions, now=utc_now())
    bank.runtime.limits.invalidate()
    return bank


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Record how riders went: ("carried", shapes) or ("alone", shapes)."""
    seen: list[tuple[str, list[Any]]] = []
    send, carry = db._send, db._carry

    async def sending(driver: Any, riders: Any) -> None:
        seen.append(("alone", [rider.shape for rider in riders]))
        await send(driver, riders)

    async def carrying(driver: Any, statement: Any, params: Any, riders: Any) -> Any:
        seen.append(("carried", [rider.shape for rider in riders]))
        return await carry(driver, statement, params, riders)

    monkeypatch.setattr(db, "_send", sending)
    monkeypatch.setattr(db, "_carry", carrying)
    return seen


def _on_postgresql(bank: Bank) -> bool:
    return bank.runtime.db.dialect.name == "postgresql"


async def _counted(bank: Bank, customer: str) -> tuple[int, list[tuple[str, int, int]]]:
    """The customer's risk activity rows, and their limit counters (bucket, amount, count)."""
    async with bank.runtime.db.connect() as conn:
        activity = await conn.execute(
            text("SELECT count(*) FROM risk_activity WHERE customer_id = :c"), {"c": customer}
        )
        usage = await conn.execute(
            text(
                "SELECT bucket, used_minor, used_count FROM limit_usage WHERE subject = :c"
                " ORDER BY bucket, used_minor"
            ),
            {"c": customer},
        )
        return int(activity.scalar_one()), [tuple(row) for row in usage]


async def _available(bank: Bank, number: str) -> int:
    async with bank.runtime.sessions() as session:
        return (await ledger.balances(session, [number]))[number].available_minor


def _customer(bank: Bank, who: str) -> str:
    return str(bank.principals[who].attributes["customer_id"])


async def test_the_controls_ride_with_the_accounts_read(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await bank.call("alice", "transfer.internal", bank.transfer("10.00"))
    assert first.ok, first
    seen = _spy(monkeypatch)
    second = await bank.call("alice", "transfer.internal", bank.transfer("20.00"))
    assert second.ok, second
    if _on_postgresql(bank):
        ((how, shapes),) = seen
        assert how == "carried"
        assert shapes[0] == "limits.booking"
        assert shapes[1][0] == "risk.features"
    else:
        assert seen == []
    (decision,) = await decisions(bank, second.txn_id)
    assert decision.outcome == "allow"
    assert decision.features["customer_count_5m"] == 1
    assert decision.features["new_beneficiary"] is False
    activity, usage = await _counted(bank, _customer(bank, "alice"))
    assert activity == 2
    # The demo's daily (global and mobile) and monthly counters, each 30.00 in two.
    assert [(minor, count) for _, minor, count in usage] == [(3000, 2)] * 3


async def test_riding_or_not_the_controls_make_the_same_records(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def three(who: str, source: str, to: str) -> list[dict[str, Any]]:
        features = []
        for amount in ("1.00", "2.00", "3.00"):
            payload = bank.transfer(amount, source=source, to=to)
            result = await bank.call(who, "transfer.internal", payload)
            assert result.ok, result
            (decision,) = await decisions(bank, result.txn_id)
            features.append(decision.features)
        return features

    riding = await three("alice", "alice.CNY", "bob.CNY")
    monkeypatch.setattr(registry, "riders", {})
    seen = _spy(monkeypatch)
    alone = await three("bob", "bob.CNY", "alice.CNY")
    assert seen == []
    assert riding == alone
    assert [f["customer_count_5m"] for f in riding] == [0, 1, 2]
    assert await _counted(bank, _customer(bank, "alice")) == (
        3,
        [(bucket, 600, 3) for bucket, _, _ in (await _counted(bank, _customer(bank, "bob")))[1]],
    )


async def test_a_transfer_failing_after_the_riders_went_leaves_nothing_of_them(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await bank.call("alice", "transfer.internal", bank.transfer("1.00"))).ok
    before = await _counted(bank, _customer(bank, "alice"))
    seen = _spy(monkeypatch)
    # The accounts read carries the riders, then finds no such beneficiary.
    nowhere = {**bank.transfer("5.00"), "to_account": "999999999999"}
    missing = await bank.call("alice", "transfer.internal", nowhere)
    assert missing.code == "NOT_FOUND", missing
    assert await decisions(bank, missing.txn_id) == []
    # More than alice has: the ledger refuses after both controls took their answers.
    available = await _available(bank, bank.accounts["alice.CNY"])
    too_much = Money(available + 1, "CNY").to_decimal_string()
    broke = await bank.call("alice", "transfer.internal", bank.transfer(too_much))
    assert broke.code == "INSUFFICIENT_FUNDS", broke
    assert [d.outcome for d in await decisions(bank, broke.txn_id)] == ["allow"]
    assert await _counted(bank, _customer(bank, "alice")) == before
    if _on_postgresql(bank):
        assert [how for how, _ in seen] == ["carried", "carried"]
