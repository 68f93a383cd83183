"""The banking services of the catalog, as a customer uses them, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest

from channelhub.kernel import TxnStatus
from tests.support.bank import Bank
from tests.support.clock import at_bank_time

pytestmark = pytest.mark.asyncio

CNY_50K = 5_000_000


async def test_account_list_has_the_fixed_wire_fields(bank: Bank) -> None:
    result = await bank.call("alice", "account.list")
    assert result.ok, result
    accounts = {a["number"]: a for a in result.data["accounts"]}
    assert set(accounts) == {bank.accounts["alice.CNY"], bank.accounts["alice.USD"]}
    cny = accounts[bank.accounts["alice.CNY"]]
    assert cny["currency"] == "CNY"
    assert cny["product"] == "CUR-CNY"
    assert cny["status"] == "active"
    assert cny["available_balance"] == "50000.00"
    assert cny["ledger_balance"] == "50000.00"


async def test_account_balance(bank: Bank) -> None:
    result = await bank.call("bob", "account.balance", {"account": bank.accounts["bob.USD"]})
    assert result.ok
    assert dict(result.data) == {
        "number": bank.accounts["bob.USD"],
        "currency": "USD",
        "available_balance": "1200.00",
        "ledger_balance": "1200.00",
    }


async def test_transfer_internal_charges_the_product_fee(bank: Bank) -> None:
    source, target = bank.accounts["alice.CNY"], bank.accounts["bob.CNY"]
    payload = {
        "from_account": source,
        "to_account": target,
        "amount": "100.00",
        "currency": "CNY",
        "memo": "dinner",
    }
    result = await bank.call("alice", "transfer.internal", payload)
    assert result.ok, result
    # CUR-CNY: 0.1 % of the amount, at least 2.00 and at most 50.00.
    assert result.data["fee"] == "2.00"
    assert result.data["from_available_balance"] == "49898.00"
    assert await bank.balance(source) == CNY_50K - 10_200
    assert await bank.balance(target) == CNY_50K + 10_000

    big = await bank.call("alice", "transfer.internal", {**payload, "amount": "40000.00"})
    assert big.data["fee"] == "40.00"
    assert big.data["from_available_balance"] == "9858.00"
    assert await bank.verify() == []


async def test_transfer_own_is_free_and_moves_between_own_accounts(bank: Bank) -> None:
    opened = await bank.call(
        "alice", "account.open", {"product": "SAV-CNY", "nickname": "rainy day"}
    )
    assert opened.ok, opened
    savings = opened.data["number"]
    result = await bank.call(
        "alice",
        "transfer.own",
        {
            "from_account": bank.accounts["alice.CNY"],
            "to_account": savings,
            "amount": "1000.00",
            "currency": "CNY",
        },
    )
    assert result.ok, result
    assert result.data["fee"] == "0.00"
    assert await bank.balance(savings) == 100_000


async def test_a_retried_transfer_executes_once(bank: Bank) -> None:
    payload = {
        "from_account": bank.accounts["alice.CNY"],
        "to_account": bank.accounts["bob.CNY"],
        "amount": "10.00",
        "currency": "CNY",
    }
    first = await bank.call("alice", "transfer.internal", payload, key="retry-1")
    again = await bank.call("alice", "transfer.internal", payload, key="retry-1")
    assert first.ok
    assert again.ok
    assert again.replayed
    assert again.txn_id == first.txn_id
    assert await bank.balance(bank.accounts["bob.CNY"]) == CNY_50K + 1_000


async def test_statement_pages_with_running_balances(bank: Bank) -> None:
    account = bank.accounts["alice.CNY"]
    start = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=120)).isoformat()
    pages = []
    page = 1
    while True:
        result = await bank.call(
            "alice",
            "account.statement",
            {"account": account, "from": start, "page": page, "page_size": 25},
        )
        assert result.ok, result
        pages.append(result.data)
        if not result.data["has_more"]:
            break
        page += 1
    lines = [line for data in pages for line in data["entries"]]
    assert len(pages) > 1, "several months of history span several pages"
    assert pages[0]["opening_balance"] == "0.00"
    assert pages[-1]["closing_balance"] == "50000.00"
    running = 0
    for line in lines:
        running += int(line["amount"].replace(".", ""))
        assert int(line["balance"].replace(".", "")) == running
    assert running == CNY_50K


async def test_statement_refuses_a_reversed_or_too_long_range(bank: Bank) -> None:
    account = bank.accounts["alice.CNY"]
    backwards = await bank.call(
        "alice", "account.statement", {"account": account, "from": "2026-02-01", "to": "2026-01-01"}
    )
    assert backwards.code == "VALIDATION_FAILED"
    too_long = await bank.call(
        "alice", "account.statement", {"account": account, "from": "2020-01-01", "to": "2026-01-01"}
    )
    assert too_long.code == "VALIDATION_FAILED"


async def test_term_deposit_opens_and_closes_early_with_the_early_rate(bank: Bank) -> None:
    # Opened and closed on one business day (the engine clock's), whenever the test runs.
    at_bank_time(bank.runtime, 14)
    source = bank.accounts["alice.CNY"]
    opened = await bank.call(
        "alice",
        "deposit.term.open",
        {"from_account": source, "product": "TD-CNY-12M", "amount": "10000.00", "currency": "CNY"},
    )
    assert opened.ok, opened
    assert opened.data["interest_rate"] == "1.75"
    assert opened.data["expected_interest"] in ("175.00", "175.47")  # 365 or 366 days
    assert opened.data["from_available_balance"] == "40000.00"
    deposit = opened.data["account"]
    detail = await bank.call("alice", "account.detail", {"account": deposit})
    assert detail.data["maturity_on"] == opened.data["maturity_on"]

    closed = await bank.call("alice", "deposit.term.close", {"account": deposit})
    assert closed.ok, closed
    assert closed.data["matured"] is False
    assert closed.data["principal"] == "10000.00"
    assert closed.data["interest"] == "0.00"  # closed the day it opened: no day has passed
    assert closed.data["paid_to"] == source
    assert await bank.balance(source) == CNY_50K
    again = await bank.call("alice", "deposit.term.close", {"account": deposit})
    assert again.code == "ACCOUNT_INACTIVE"
    assert await bank.verify() == []


async def test_term_deposit_below_the_product_minimum_is_refused(bank: Bank) -> None:
    before = await bank.postings()
    result = await bank.call(
        "alice",
        "deposit.term.open",
        {
            "from_account": bank.accounts["alice.CNY"],
            "product": "TD-CNY-3M",
            "amount": "999.99",
            "currency": "CNY",
        },
    )
    assert result.code == "INVALID_AMOUNT"
    assert await bank.postings() == before


async def test_account_open_follows_product_eligibility(bank: Bank) -> None:
    refused = await bank.call("bob", "account.open", {"product": "CUR-CNY-PREMIER"})
    assert refused.code == "PRODUCT_NOT_ELIGIBLE"
    assert refused.details["reason"] == "segment"
    opened = await bank.call("alice", "account.open", {"product": "CUR-CNY-PREMIER"})
    assert opened.ok
    # A premier account may be overdrawn down to its product's limit, and no further.
    number = opened.data["number"]
    out = {"from_account": number, "to_account": bank.accounts["bob.CNY"], "currency": "CNY"}
    assert (await bank.call("alice", "transfer.internal", {**out, "amount": "20000.00"})).ok
    over = await bank.call("alice", "transfer.internal", {**out, "amount": "0.01"})
    assert over.code == "INSUFFICIENT_FUNDS"
    loan = await bank.call("alice", "account.open", {"product": "LOAN-CNY-PERSONAL"})
    assert loan.code == "PRODUCT_NOT_ELIGIBLE"


async def test_cards_are_listed_masked_blocked_and_unblocked(bank: Bank) -> None:
    listed = await bank.call("alice", "card.list")
    assert [card["number"] for card in listed.data["cards"]] == ["623456******0016"]
    card = bank.cards["alice"]
    assert (await bank.call("alice", "card.block", {"card": card})).data["status"] == "blocked"
    assert (await bank.call("alice", "card.unblock", {"card": card})).data["status"] == "active"
    lost = await bank.call("alice", "card.block", {"card": card, "reason": "lost"})
    assert lost.data["status"] == "lost"
    stays_lost = await bank.call("alice", "card.unblock", {"card": card})
    assert stays_lost.code == "CARD_STATUS_INVALID"


async def test_products_and_profile(bank: Bank) -> None:
    products = await bank.call("alice", "product.list", {"currency": "USD"})
    assert {p["code"] for p in products.data["products"]} == {"CUR-USD", "SAV-USD", "TD-USD-6M"}
    detail = await bank.call("alice", "product.detail", {"product": "CUR-CNY"})
    assert detail.data["fees"]["transfer.internal"]["minimum"] == "2.00"
    missing = await bank.call("alice", "product.detail", {"product": "NOPE"})
    assert missing.code == "NOT_FOUND"
    profile = await bank.call("alice", "customer.profile")
    assert profile.data["name"] == "Alice Zhang"
    assert profile.data["id_number"] == "310***********1234"
    assert "310101199001011234" not in str(profile.data)


async def test_company_operators_act_for_the_company(bank: Bank) -> None:
    result = await bank.call("acme.op1", "account.list")
    assert result.ok
    assert [a["ledger_balance"] for a in result.data["accounts"]] == ["1000000.00"]
    assert result.status is TxnStatus.SUCCEEDED
