"""Bad requests to the banking services get a clear canonical code and post nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.support.bank import Bank

pytestmark = pytest.mark.asyncio


def _transfer(bank: Bank, **changes: Any) -> dict[str, Any]:
    payload = {
        "from_account": bank.accounts["alice.CNY"],
        "to_account": bank.accounts["bob.CNY"],
        "amount": "10.00",
        "currency": "CNY",
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


async def _set_status(bank: Bank, number: str, status: str) -> None:
    closed_on = ", closed_on = CURRENT_DATE" if status == "closed" else ""
    async with bank.runtime.sessions() as session, session.begin():
        await session.execute(
            text(f"UPDATE accounts SET status = :status{closed_on} WHERE number = :number"),
            {"status": status, "number": number},
        )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"to_account": "0101999999999999"}, "NOT_FOUND"),
        ({"from_account": "0101999999999999"}, "NOT_FOUND"),
        ({"amount": "-10.00"}, "INVALID_AMOUNT"),
        ({"amount": "0"}, "INVALID_AMOUNT"),
        ({"amount": "0.00"}, "INVALID_AMOUNT"),
        ({"amount": "10.001"}, "INVALID_AMOUNT"),
        ({"amount": "1e3"}, "INVALID_AMOUNT"),
        ({"amount": "ten"}, "INVALID_AMOUNT"),
        ({"amount": 10}, "VALIDATION_FAILED"),
        ({"amount": "10.00", "currency": "XXY"}, "INVALID_AMOUNT"),
        ({"currency": "USD"}, "CURRENCY_MISMATCH"),
        ({"to_account": "acct'; DROP TABLE accounts;--"}, "VALIDATION_FAILED"),
        ({"memo": "x" * 141}, "VALIDATION_FAILED"),
        ({"amount": "9" * 30}, "VALIDATION_FAILED"),
        ({"extra": "field"}, "VALIDATION_FAILED"),
        ({"amount": None}, "VALIDATION_FAILED"),
        ({"amount": "1000000.00"}, "INSUFFICIENT_FUNDS"),
    ],
)
async def test_transfer_refusals(bank: Bank, changes: dict[str, Any], code: str) -> None:
    before = await bank.postings()
    result = await bank.call("alice", "transfer.internal", _transfer(bank, **changes))
    assert result.code == code, result
    assert await bank.postings() == before
    assert await bank.verify() == []


async def test_self_transfer_is_refused(bank: Bank) -> None:
    before = await bank.postings()
    account = bank.accounts["alice.CNY"]
    result = await bank.call(
        "alice", "transfer.internal", _transfer(bank, to_account=account, from_account=account)
    )
    assert result.code == "SELF_TRANSFER"
    assert await bank.postings() == before


@pytest.mark.parametrize("status", ["frozen", "dormant", "closed"])
@pytest.mark.parametrize("side", ["from_account", "to_account"])
async def test_inactive_accounts_neither_send_nor_receive(
    bank: Bank, status: str, side: str
) -> None:
    number = bank.accounts["alice.CNY"] if side == "from_account" else bank.accounts["bob.CNY"]
    await _set_status(bank, number, status)
    before = await bank.postings()
    result = await bank.call("alice", "transfer.internal", _transfer(bank))
    assert result.code == "ACCOUNT_INACTIVE", result
    assert result.details["account"] == number
    assert await bank.postings() == before


async def test_a_term_deposit_is_not_a_transfer_account(bank: Bank) -> None:
    opened = await bank.call(
        "alice",
        "deposit.term.open",
        {
            "from_account": bank.accounts["alice.CNY"],
            "product": "TD-CNY-3M",
            "amount": "1000.00",
            "currency": "CNY",
        },
    )
    assert opened.ok
    result = await bank.call(
        "alice",
        "transfer.own",
        _transfer(bank, from_account=opened.data["account"], to_account=bank.accounts["alice.CNY"]),
    )
    assert result.code == "ACCOUNT_INACTIVE"


async def test_unknown_product_and_card(bank: Bank) -> None:
    assert (await bank.call("alice", "account.open", {"product": "NOPE"})).code == "NOT_FOUND"
    assert (await bank.call("alice", "card.block", {"card": "not-a-card"})).code == "NOT_FOUND"
    missing = "01890000-0000-7000-8000-000000000000"
    assert (await bank.call("alice", "card.block", {"card": missing})).code == "NOT_FOUND"
    wrong_type = await bank.call(
        "alice",
        "deposit.term.open",
        {
            "from_account": bank.accounts["alice.CNY"],
            "product": "SAV-CNY",
            "amount": "1000.00",
            "currency": "CNY",
        },
    )
    assert wrong_type.code == "PRODUCT_NOT_ELIGIBLE"
