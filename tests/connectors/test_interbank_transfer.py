"""transfer.interbank through the iso20022 connector to the simulated clearing house, on
SQLite and PostgreSQL, over real sockets: the customer is debited into the clearing account,
the pacs.008 goes out, and a rejection, or a clearing house that is down, undoes the debit and
gives the limit back. Both sides of the books are checked: the ledger and the clearing house's
credits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channelhub.connectors.simulators.clearing import ClearingSimulator
from channelhub.kernel.model import TxnStatus
from channelhub.runtime import Runtime
from tests.conftest import make_settings
from tests.connectors.conftest import journal_row, limit_used, open_limited_bank, recovery
from tests.connectors.iso20022.conftest import HUANG_USD, LIU, SUN_CLOSED
from tests.support.bank import Bank


@pytest.fixture
async def bank(
    database_url: str, tmp_path: Path, clearing: ClearingSimulator
) -> AsyncIterator[Bank]:
    backend = {
        "kind": "iso20022",
        "url": clearing.url,
        "timeout_ms": 500,
        "retries": 0,
        "breaker": {"failure_threshold": 3, "recovery_seconds": 0.5},
    }
    runtime = Runtime.build(make_settings(database_url, tmp_path, connectors={"clearing": backend}))
    bank = await open_limited_bank(runtime)
    yield bank
    await runtime.close()


def payment(bank: Bank, amount: str, creditor: tuple[str, str] = LIU) -> dict[str, Any]:
    bic, account = creditor
    return {
        "from_account": bank.accounts["alice.CNY"],
        "creditor_agent": bic,
        "creditor_account": account,
        "creditor_name": "LIU YANG",
        "amount": amount,
        "currency": "CNY",
        "memo": "invoice 42",
    }


async def test_a_settled_payment_debits_the_customer_and_credits_the_other_bank(
    bank: Bank, clearing: ClearingSimulator
) -> None:
    alice = bank.accounts["alice.CNY"]
    before = await bank.balance(alice)
    result = await bank.call("alice", "transfer.interbank", payment(bank, "100.00"))
    assert result.ok, result
    assert result.data["clearing_status"] == "ACSC"
    fee = int(result.data["fee"].replace(".", ""))
    assert fee > 0  # the product's transfer.interbank fee
    assert await bank.balance(alice) == before - 100_00 - fee
    assert clearing.credited(LIU[1], LIU[0]) == 100_00
    assert await limit_used(bank) == "100.00"
    assert await bank.verify() == []


@pytest.mark.parametrize(
    ("creditor", "code"),
    [
        ((LIU[0], "6216610199999999"), "NOT_FOUND"),  # AC01
        (SUN_CLOSED, "ACCOUNT_CLOSED"),  # AC04
        (HUANG_USD, "CURRENCY_MISMATCH"),  # AM03
    ],
)
async def test_a_rejected_payment_is_reversed_and_its_limit_released(
    bank: Bank, clearing: ClearingSimulator, creditor: tuple[str, str], code: str
) -> None:
    alice = bank.accounts["alice.CNY"]
    before = await bank.balance(alice)
    result = await bank.call("alice", "transfer.interbank", payment(bank, "100.00", creditor))
    assert result.status is TxnStatus.FAILED
    assert result.code == code
    assert await bank.balance(alice) == before  # the debit (and its fee) reversed
    assert clearing.credited(creditor[1]) == 0
    assert await limit_used(bank) == "0.00"
    assert await bank.verify() == []
    row = await journal_row(bank, result.txn_id)
    states = {entry.get("step"): entry.get("state") for entry in row.step_log}
    assert states["ledger.post"] == "compensated"
    assert states["limits.reserve"] == "compensated"


async def test_a_lost_answer_is_settled_by_the_status_inquiry(
    bank: Bank, clearing: ClearingSimulator
) -> None:
    await clearing.set_faults(drop=True)  # the pacs.008 settles, its pacs.002 never comes
    result = await bank.call("alice", "transfer.interbank", payment(bank, "80.00"))
    assert result.ok, result  # the pacs.028 found it settled
    assert result.data["clearing_status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 80_00
    assert await limit_used(bank) == "80.00"


async def test_garbage_leaves_it_in_doubt_until_the_clearing_house_can_say(
    bank: Bank, clearing: ClearingSimulator
) -> None:
    alice = bank.accounts["alice.CNY"]
    before = await bank.balance(alice)
    await clearing.set_faults(garbage=True)  # settles, answers (and answers inquiries) garbage
    result = await bank.call("alice", "transfer.interbank", payment(bank, "60.00"))
    assert result.status is TxnStatus.IN_DOUBT
    assert result.code == "BACKEND_BAD_RESPONSE"
    assert clearing.credited(LIU[1]) == 60_00  # it did settle
    await clearing.set_faults(garbage=False)
    await asyncio.sleep(0.6)  # the circuit the garbage may have opened lets a probe through
    report = await recovery(bank.runtime).run_once()
    assert report.completed == [str(result.txn_id)]
    data = (await journal_row(bank, result.txn_id)).response["data"]
    assert data["clearing_status"] == "ACSC"
    fee = int(data["fee"].replace(".", ""))
    assert await bank.balance(alice) == before - 60_00 - fee  # the debit stands
    assert "from_available_balance" in data
    assert await limit_used(bank) == "60.00"
    assert await bank.verify() == []


async def test_a_clearing_house_that_is_down_changes_nothing(
    bank: Bank, clearing: ClearingSimulator
) -> None:
    alice = bank.accounts["alice.CNY"]
    before = await bank.balance(alice)
    await clearing.set_faults(down=True)
    result = await bank.call("alice", "transfer.interbank", payment(bank, "40.00"))
    assert result.status is TxnStatus.FAILED
    assert result.code == "BACKEND_UNAVAILABLE"
    assert await bank.balance(alice) == before
    assert await limit_used(bank) == "0.00"


async def test_without_a_clearing_back_end_the_service_says_so_and_moves_nothing(
    database_url: str, tmp_path: Path
) -> None:
    runtime = Runtime.build(make_settings(database_url, tmp_path))
    try:
        bank = await open_limited_bank(runtime)
        alice = bank.accounts["alice.CNY"]
        before = await bank.balance(alice)
        result = await bank.call("alice", "transfer.interbank", payment(bank, "40.00"))
        assert result.status is TxnStatus.FAILED
        assert result.code == "BACKEND_NOT_CONFIGURED"
        assert "[connectors.clearing]" in result.message
        assert await bank.balance(alice) == before
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"creditor_agent": "not a bic"}, "VALIDATION_FAILED"),
        ({"creditor_agent": "BKCHCNBJXXX<x/>"}, "VALIDATION_FAILED"),
        ({"creditor_account": "6216'; DROP TABLE accounts;--"}, "VALIDATION_FAILED"),
        ({"creditor_name": "A" * 141}, "VALIDATION_FAILED"),
        ({"creditor_name": ""}, "VALIDATION_FAILED"),
        ({"amount": "0.00"}, "INVALID_AMOUNT"),
        ({"amount": "-5.00"}, "INVALID_AMOUNT"),
        ({"amount": "1.001"}, "INVALID_AMOUNT"),
        ({"amount": 12.5}, "VALIDATION_FAILED"),
        ({"currency": "XXX"}, "INVALID_AMOUNT"),
        ({"memo": "x" * 141}, "VALIDATION_FAILED"),
        ({"extra": "field"}, "VALIDATION_FAILED"),
    ],
)
async def test_bad_input_is_refused_before_anything_moves(
    bank: Bank, clearing: ClearingSimulator, change: dict[str, Any], code: str
) -> None:
    alice = bank.accounts["alice.CNY"]
    before = await bank.balance(alice)
    result = await bank.call("alice", "transfer.interbank", {**payment(bank, "10.00"), **change})
    assert result.status is TxnStatus.FAILED
    assert result.code == code
    assert await bank.balance(alice) == before
    assert clearing.entries_count == 0  # nothing reached the clearing house


async def test_another_customers_account_cannot_pay(
    bank: Bank, clearing: ClearingSimulator
) -> None:
    bob = bank.accounts["bob.CNY"]
    before = await bank.balance(bob)
    result = await bank.call(
        "alice", "transfer.interbank", {**payment(bank, "10.00"), "from_account": bob}
    )
    assert result.status is TxnStatus.FAILED
    assert result.code in ("FORBIDDEN", "NOT_FOUND")
    assert await bank.balance(bob) == before
    assert clearing.entries_count == 0
