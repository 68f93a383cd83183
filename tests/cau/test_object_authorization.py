"""A customer only ever reads or moves money on the accounts and cards of the customer it acts
for: alice cannot see, debit or list bob's, through any service. Each attempt is refused with
a canonical code, recorded in the journal, and moves nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from channelhub.kernel import TxnStatus
from channelhub.kernel.model import ANONYMOUS, AuthLevel, Principal, PrincipalKind
from channelhub.models import JournalEntry
from tests.support.bank import Bank

pytestmark = pytest.mark.asyncio


def _attempts(bank: Bank) -> list[tuple[str, dict[str, Any]]]:
    bob_cny, bob_usd = bank.accounts["bob.CNY"], bank.accounts["bob.USD"]
    alice_cny = bank.accounts["alice.CNY"]
    return [
        ("account.balance", {"account": bob_cny}),
        ("account.detail", {"account": bob_usd}),
        ("account.statement", {"account": bob_cny}),
        (
            "transfer.internal",
            {"from_account": bob_cny, "to_account": alice_cny, "amount": "1.00", "currency": "CNY"},
        ),
        (
            "transfer.own",
            {"from_account": bob_cny, "to_account": alice_cny, "amount": "1.00", "currency": "CNY"},
        ),
        (
            "transfer.own",
            {"from_account": alice_cny, "to_account": bob_cny, "amount": "1.00", "currency": "CNY"},
        ),
        (
            "deposit.term.open",
            {
                "from_account": bob_cny,
                "product": "TD-CNY-3M",
                "amount": "1000.00",
                "currency": "CNY",
            },
        ),
        ("deposit.term.close", {"account": bob_cny}),
        ("card.block", {"card": bank.cards["bob"]}),
        ("card.unblock", {"card": bank.cards["bob"]}),
    ]


async def test_alice_cannot_touch_bobs_accounts_or_cards(bank: Bank) -> None:
    postings = await bank.postings()
    for service, payload in _attempts(bank):
        result = await bank.call("alice", service, payload)
        assert result.status is TxnStatus.FAILED, (service, result)
        assert result.code == "FORBIDDEN", (service, result)
        assert result.data == {}, service
    assert await bank.postings() == postings
    # bob's card is untouched and his balances too.
    cards = await bank.call("bob", "card.list")
    assert [card["status"] for card in cards.data["cards"]] == ["active"]
    assert await bank.balance(bank.accounts["bob.CNY"]) == 5_000_000


async def test_each_refusal_is_recorded_in_the_journal(bank: Bank) -> None:
    await bank.call("alice", "account.balance", {"account": bank.accounts["bob.CNY"]})
    async with bank.runtime.sessions() as session:
        row = (
            (await session.execute(select(JournalEntry).order_by(JournalEntry.created_at.desc())))
            .scalars()
            .first()
        )
    assert row is not None
    assert (row.service_id, row.status, row.code) == ("account.balance", "failed", "FORBIDDEN")
    assert row.principal_id == bank.principals["alice"].id


async def test_listing_shows_only_the_callers_own(bank: Bank) -> None:
    alice = await bank.call("alice", "account.list")
    numbers = {account["number"] for account in alice.data["accounts"]}
    assert bank.accounts["bob.CNY"] not in numbers
    assert bank.accounts["bob.USD"] not in numbers
    cards = await bank.call("alice", "card.list")
    assert {card["id"] for card in cards.data["cards"]} == {bank.cards["alice"]}


async def test_a_principal_acting_for_no_customer_is_refused(bank: Bank) -> None:
    staff = Principal(kind=PrincipalKind.STAFF, id="teller1", auth_level=AuthLevel.MFA)
    for who, code in ((staff, "FORBIDDEN"), (ANONYMOUS, "UNAUTHENTICATED")):
        bank.principals["intruder"] = who
        result = await bank.call("intruder", "account.list")
        assert result.code == code, result
        assert result.data == {}
