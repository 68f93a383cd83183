"""Limits through the kernel: reservation under concurrency, the tightest limit named, what
a failure gives back, a customer's own limits, on SQLite, PostgreSQL and Redis counters."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import text

from channelhub.kernel.model import TxnStatus
from channelhub.runtime import Runtime
from tests.limits.conftest import set_bank_limit
from tests.support.bank import Bank


async def _used(bank: Bank, limit_id: str) -> tuple[int, int]:
    """What the counters hold for alice on ``limit_id`` today (the engine clock's business
    day, the one its transactions counted in), wherever they are kept."""
    runtime = bank.runtime
    customer = bank.principals["alice"].attributes["customer_id"]
    async with runtime.sessions() as session:
        views = await runtime.limits.customer_limits(
            session,
            customer_id=customer,
            segment=None,
            accounts=[],
            cards=[],
            now=runtime.engine.clock(),
        )
    view = next(v for v in views if v["id"] == limit_id)
    return int(view["used"].replace(".", "")), int(view["count_used"])


async def test_concurrent_transfers_never_overrun_a_daily_limit(bank: Bank) -> None:
    limit = await set_bank_limit(
        bank.runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="1000.00",
    )
    before = await bank.balance(bank.accounts["alice.CNY"])

    results = await asyncio.gather(
        *(bank.call("alice", "transfer.internal", bank.transfer("30.00")) for _ in range(100))
    )

    ok = [r for r in results if r.status is TxnStatus.SUCCEEDED]
    refused = [r for r in results if r.status is not TxnStatus.SUCCEEDED]
    assert len(ok) == 33  # 33 x 30.00 = 990.00; a 34th would be 1,020.00
    assert {r.code for r in refused} == {"LIMIT_EXCEEDED"}
    assert all(r.details["limit"] == limit["id"] for r in refused)
    assert await _used(bank, str(limit["id"])) == (33 * 3000, 33)
    # Each success moved 30.00 plus its 2.00 fee; nothing else left the account.
    assert before - await bank.balance(bank.accounts["alice.CNY"]) == 33 * 3200
    assert await bank.verify() == []


async def test_the_tightest_limit_is_named(bank: Bank) -> None:
    runtime = bank.runtime
    await set_bank_limit(
        runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="5000.00",
    )
    mobile = await set_bank_limit(
        runtime,
        level="channel",
        channel="mobile",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="300.00",
    )
    per_txn = await set_bank_limit(
        runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="transaction",
        amount="250.00",
    )

    too_big = await bank.call("alice", "transfer.internal", bank.transfer("260.00"))
    assert too_big.code == "LIMIT_EXCEEDED"
    assert too_big.details["limit"] == per_txn["id"]
    assert too_big.details["period"] == "transaction"

    first = await bank.call("alice", "transfer.internal", bank.transfer("200.00"))
    assert first.ok, first
    refusals = ("channelhub_limit_refusals_total", {
        "level": "channel", "period": "daily", "channel": "mobile", "by": "amount"
    })  # fmt: skip
    before = REGISTRY.get_sample_value(*refusals) or 0.0
    second = await bank.call("alice", "transfer.internal", bank.transfer("200.00"))
    assert second.code == "LIMIT_EXCEEDED"
    assert second.details["limit"] == mobile["id"]
    assert second.details["remaining"] == "100.00"
    assert REGISTRY.get_sample_value(*refusals) == before + 1  # seen on /metrics
    # The web channel has room: only the global daily limit governs it there.
    on_web = await bank.call("alice", "transfer.internal", bank.transfer("200.00"), channel="web")
    assert on_web.ok, on_web


async def test_a_count_limit_refuses_the_next_transaction(bank: Bank) -> None:
    await set_bank_limit(
        bank.runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        count=2,
    )
    codes = [
        (await bank.call("alice", "transfer.internal", bank.transfer("1.00"))).code
        for _ in range(3)
    ]
    assert codes == ["OK", "OK", "LIMIT_COUNT_EXCEEDED"]


async def test_a_failed_transfer_gives_its_limit_back(bank: Bank) -> None:
    limit = await set_bank_limit(
        bank.runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="100000.00",
    )
    # More than alice has: the ledger refuses after the limit was reserved.
    broke = await bank.call("alice", "transfer.internal", bank.transfer("60000.00"))
    assert broke.code == "INSUFFICIENT_FUNDS"
    assert await _used(bank, str(limit["id"])) == (0, 0)
    ok = await bank.call("alice", "transfer.internal", bank.transfer("10.00"))
    assert ok.ok
    assert await _used(bank, str(limit["id"])) == (1000, 1)


async def test_an_account_limit_counts_per_account(bank: Bank) -> None:
    account = bank.accounts["alice.CNY"]
    await set_bank_limit(
        bank.runtime,
        level="account",
        subject=account,
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="50.00",
    )
    assert (await bank.call("alice", "transfer.internal", bank.transfer("40.00"))).ok
    refused = await bank.call("alice", "transfer.internal", bank.transfer("20.00"))
    assert refused.code == "LIMIT_EXCEEDED"
    assert refused.details["level"] == "account"
    # bob's transfers are not alice's account's.
    mine = {
        "from_account": bank.accounts["bob.CNY"],
        "to_account": account,
        "amount": "20.00",
        "currency": "CNY",
    }
    assert (await bank.call("bob", "transfer.internal", mine)).ok


async def test_customer_lowers_and_lists_own_limits(bank: Bank) -> None:
    await set_bank_limit(
        bank.runtime,
        level="channel",
        channel="mobile",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="5000.00",
    )
    own = {
        "scope": "transfer.outgoing",
        "channel": "mobile",
        "period": "daily",
        "amount": "100.00",
        "currency": "CNY",
    }
    lowered = await bank.call("alice", "limit.set", own)
    assert lowered.ok, lowered
    assert lowered.data["limit"]["limit"] == "100.00"

    above = await bank.call("alice", "limit.set", {**own, "amount": "6000.00"})
    assert above.code == "LIMIT_ABOVE_CEILING"
    assert above.details["ceiling"] == "5000.00"

    assert (await bank.call("alice", "transfer.internal", bank.transfer("60.00"))).ok
    refused = await bank.call("alice", "transfer.internal", bank.transfer("60.00"))
    assert refused.code == "LIMIT_EXCEEDED"
    assert refused.details["owner"] == "customer"

    listed = await bank.call("alice", "limit.list")
    assert listed.ok
    rows = {(row["owner"], row["channel"]): row for row in listed.data["limits"]}
    mine = rows["customer", "mobile"]
    assert (mine["scope"], mine["period"], mine["currency"]) == (
        "transfer.outgoing",
        "daily",
        "CNY",
    )
    assert (mine["limit"], mine["used"], mine["remaining"]) == ("100.00", "60.00", "40.00")
    banks = rows["bank", "mobile"]
    assert (banks["limit"], banks["used"], banks["remaining"]) == ("5000.00", "60.00", "4940.00")
    # Raising back up to the bank's ceiling is allowed: it is the customer's own limit.
    assert (await bank.call("alice", "limit.set", {**own, "amount": "5000.00"})).ok
    # bob sees none of alice's limits.
    bobs = await bank.call("bob", "limit.list")
    assert all(row["owner"] == "bank" for row in bobs.data["limits"])


async def test_limit_set_refuses_bad_input_and_changes_nothing(bank: Bank) -> None:
    good = {
        "scope": "transfer.outgoing",
        "channel": "mobile",
        "period": "daily",
        "amount": "100.00",
        "currency": "CNY",
    }
    bad: list[dict[str, Any]] = [
        {**good, "amount": "-1.00"},
        {**good, "amount": "1e3"},
        {**good, "amount": 100},
        {**good, "amount": "1" * 30},
        {**good, "scope": "everything"},
        {**good, "period": "hourly"},
        {**good, "channel": "moon"},
        {**good, "currency": "cny"},
        {**good, "extra": "x"},
        {key: value for key, value in good.items() if key != "amount"},
    ]
    for payload in bad:
        result = await bank.call("alice", "limit.set", payload)
        assert result.status is TxnStatus.FAILED, payload
        assert result.code in ("VALIDATION_FAILED", "INVALID_AMOUNT"), (payload, result.code)
    async with bank.runtime.sessions() as session:
        count = await session.scalar(text("SELECT count(*) FROM limit_definitions"))
    assert count == 0


async def test_a_bank_limit_change_reaches_another_node(bank: Bank, limit_runtime: Runtime) -> None:
    other = Runtime.build(limit_runtime.settings)
    try:
        await other.limits.refresh()
        before = other.limits.bank_limits
        assert not before
        await set_bank_limit(
            limit_runtime,
            level="global",
            scope="transfer.outgoing",
            currency="CNY",
            period="daily",
            amount="10.00",
        )
        # The other node learns of it at its next sync, without a restart.
        assert await other.limits.refresh()
        after = other.limits.bank_limits
        assert [known.max_amount_minor for known in after] == [1000]
    finally:
        await other.close()
