"""One customer across three channels on one node, over real sockets: alice deposits cash at
the teller desk, withdraws at the ATM (ISO 8583 over TCP) and transfers in the app (REST). The
three transactions land in one journal, count against one daily limit, and move one set of
balances; when the limit is used up, every channel refuses the next one alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from channelhub.config import Settings
from channelhub.demo.identities import seed_identities, seed_terminals
from channelhub.kit.clock import utc_now
from channelhub.kit.money import Money
from channelhub.runtime import Runtime
from tests.channels_iso8583.conftest import ALICE_PAN, PIN, AtmNode, atm_settings
from tests.channels_teller.conftest import Desk, alice, desk_token
from tests.conftest import serving
from tests.limits.conftest import set_bank_limit
from tests.security.conftest import SecureNode, call, login
from tests.support.bank import Bank, open_bank
from tests.support.clock import at_bank_time

pytestmark = pytest.mark.asyncio

#: The one bank-wide daily limit on money leaving a customer's accounts, whatever the channel.
DAILY_LIMIT = "3000.00"


@dataclass
class Branch:
    """A node serving HTTP (the app and the desk) and ISO 8583 (the ATM), on one database."""

    web: SecureNode
    atm: AtmNode
    desk: Desk
    bank: Bank


@asynccontextmanager
async def serve_every_channel(settings: Settings) -> AsyncIterator[Branch]:
    """Seed the demo bank with its people and terminals, set the daily limit, and serve."""
    runtime = Runtime.build(settings)
    try:
        bank = await open_bank(runtime)
        await seed_identities(runtime.sessions, runtime.security, now=utc_now())
        await runtime.security.start()
        await seed_terminals(runtime.sessions, runtime.security)
        await set_bank_limit(
            runtime,
            level="global",
            scope="transfer.outgoing",
            currency="CNY",
            period="daily",
            amount=DAILY_LIMIT,
        )
        node = serving(settings)
        async with node as base, aiohttp.ClientSession() as http:
            app: Any = node.server.config.app
            # One daily limit over three channels: its day is the node's engine clock's, at
            # 14:30 bank time, so the test never straddles the bank's midnight.
            at_bank_time(app.state.runtime, 14)
            web = SecureNode(base, settings, dict(bank.accounts), app.state.runtime)
            host, port = app.state.iso8583.address
            yield Branch(web, AtmNode(host, port, bank, settings), Desk(web, http), bank)
    finally:
        await runtime.close()


@pytest.fixture
async def branch(database_url: str, tmp_path: Path) -> AsyncIterator[Branch]:
    """The demo bank served on every channel."""
    async with serve_every_channel(atm_settings(database_url, tmp_path)) as served:
        yield served


async def _app_token(branch: Branch) -> str:
    status, body = await login(branch.desk.http, branch.web, "alice", device="alice-phone")
    assert status == 200, body
    return str(body["access_token"])


def _minor(text_amount: str) -> int:
    return Money.parse(text_amount, "CNY").minor


async def test_one_customer_three_channels_one_journal_one_limit_one_balance(
    branch: Branch,
) -> None:
    bank, desk, web = branch.bank, branch.desk, branch.web
    mine, bobs = bank.accounts["alice.CNY"], bank.accounts["bob.CNY"]
    start = await bank.balance(mine)

    # 1. At the teller desk: 1,000.00 in cash. A deposit moves no money out: no limit used.
    teller = await desk_token(desk.http, web, "teller1")
    status, deposit = await desk.call(
        teller,
        "cash.deposit",
        {"account": mine, "amount": "1000.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, deposit["code"]) == (200, "OK"), deposit

    # 2. At the ATM, with her card and PIN: 1,500.00 in cash.
    async with branch.atm.connected() as atm:
        withdrawal = await atm.send(
            atm.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=150_000)
        )
        assert withdrawal.code == "00", withdrawal.fields
        assert withdrawal.balances["02"] == ("CNY", start + 100_000 - 150_000)

    # 3. In the app: 1,000.00 to bob. 2,500.00 of the 3,000.00 daily limit is now used.
    token = await _app_token(branch)
    transfer: dict[str, object] = {
        "from_account": mine,
        "to_account": bobs,
        "amount": "1000.00",
        "currency": "CNY",
    }
    status, sent = await call(
        desk.http, web, "transfer.internal", transfer, token, **{"Idempotency-Key": "x-1"}
    )
    assert (status, sent["code"]) == (200, "OK"), sent
    fee = _minor(str(sent["data"]["fee"]))  # type: ignore[index]

    # One limit: what the app shows as used is what the desk, the ATM and the app moved out.
    status, listed = await call(desk.http, web, "limit.list", {}, token)
    assert status == 200, listed
    daily = [
        row
        for row in listed["data"]["limits"]  # type: ignore[index]
        if row["period"] == "daily" and row["currency"] == "CNY"
    ]
    assert [(row["limit"], row["used"]) for row in daily] == [(DAILY_LIMIT, "2500.00")]

    # ... so 600.00 more is refused on every channel, and moves nothing.
    over: dict[str, object] = {**transfer, "amount": "600.00"}
    status, refused = await call(
        desk.http, web, "transfer.internal", over, token, **{"Idempotency-Key": "x-2"}
    )
    assert (status, refused["code"]) == (422, "LIMIT_EXCEEDED"), refused
    async with branch.atm.connected() as atm:
        answer = await atm.send(
            atm.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=60_000)
        )
        assert answer.code == "61", answer.fields  # exceeds withdrawal amount limit
    status, at_desk = await desk.call(
        teller,
        "cash.withdraw",
        {"account": mine, "amount": "600.00", "currency": "CNY"},
        customer=alice(),
    )
    assert (status, at_desk["code"]) == (422, "LIMIT_EXCEEDED"), at_desk

    # One set of balances: every movement, whichever channel made it.
    expected = start + 100_000 - 150_000 - 100_000 - fee
    assert await bank.balance(mine) == expected
    assert await bank.verify() == []

    # One journal: the three succeeded, each under its own channel, all for alice's account.
    async with bank.runtime.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT channel, service_id, status, amount_minor FROM transactions "
                    "WHERE service_id IN ('cash.deposit', 'cash.withdraw', 'transfer.internal') "
                    "ORDER BY created_at"
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("teller", "cash.deposit", "succeeded", 100_000),
        ("atm", "cash.withdraw", "succeeded", 150_000),
        ("mobile", "transfer.internal", "succeeded", 100_000),
        ("mobile", "transfer.internal", "failed", 60_000),
        ("atm", "cash.withdraw", "failed", 60_000),
        ("teller", "cash.withdraw", "failed", 60_000),
    ]


async def test_wrong_pins_count_on_the_card_whichever_channel_took_them(branch: Branch) -> None:
    desk, web = branch.desk, branch.web
    mine = branch.bank.accounts["alice.CNY"]
    before = await branch.bank.balance(mine)
    teller = await desk_token(desk.http, web, "teller1")
    wrong_at_desk = {"card": ALICE_PAN, "pin": "9999"}
    balance = {"account": mine}
    for _ in range(2):
        status, body = await desk.call(teller, "account.balance", balance, customer=wrong_at_desk)
        assert (status, body["code"]) == (422, "CUSTOMER_NOT_IDENTIFIED"), body
    # The third wrong PIN, at the ATM, blocks the card: 75, PIN tries exceeded.
    async with branch.atm.connected() as atm:
        answer = await atm.send(atm.financial("balance", pan=ALICE_PAN, pin="9999"))
        assert answer.code == "75", answer.fields
        # Blocked now, for the right PIN too.
        answer = await atm.send(atm.financial("balance", pan=ALICE_PAN, pin=PIN))
        assert answer.code == "75", answer.fields
    right_at_desk = {"card": ALICE_PAN, "pin": PIN}
    status, body = await desk.call(teller, "account.balance", balance, customer=right_at_desk)
    assert (status, body["code"]) == (422, "CUSTOMER_NOT_IDENTIFIED"), body
    # Her id document still identifies her at the desk; nothing moved.
    status, body = await desk.call(teller, "account.balance", balance, customer=alice())
    assert (status, body["code"]) == (200, "OK"), body
    assert await branch.bank.balance(mine) == before
