"""The ATM and POS channel as terminals use it, over a real socket: balance, purchase,
transfer, authorization and reversal, duplicates, and each refusal with its field 39."""

from __future__ import annotations

import datetime as dt

import pytest

from channelhub.channels.iso8583.expiry import release_expired_authorizations
from channelhub.kit.clock import utc_now
from channelhub.risk.schemas import RuleBody
from channelhub.risk.service import save_rule
from tests.channels_iso8583.conftest import ALICE_PAN, BOB_PAN, PIN, AtmNode

pytestmark = pytest.mark.asyncio


async def test_echo_and_balance(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected() as device:
        echo = await device.send(device.echo())
        assert (echo.fields["t"], echo.code, echo.mac_ok) == ("0810", "00", True)
        answer = await device.send(device.financial("balance", pan=ALICE_PAN, pin=PIN))
    assert (answer.fields["t"], answer.code, answer.mac_ok) == ("0210", "00", True)
    assert answer.balances["01"] == ("CNY", before)
    assert answer.balances["02"] == ("CNY", before)
    assert "2" not in answer.fields
    assert "52" not in answer.fields


async def test_purchase_debits_the_card_account_once(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        request = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=12_345)
        answer = await device.send(dict(request))
        assert answer.code == "00", answer.fields
        assert answer.balances["02"] == ("CNY", before - 12_345)
        assert await atm.bank.balance(account) == before - 12_345
        # The same message again (terminal, STAN, time): the first one's answer, no debit.
        again = await device.send(dict(request))
        assert again.code == "00"
        assert again.fields["38"] == answer.fields["38"]
        # The same STAN and time with another amount: a duplicate transmission.
        other = dict(request, **{"4": "000000000001"})
        assert (await device.send(other)).code == "94"
    assert await atm.bank.balance(account) == before - 12_345
    assert await atm.bank.verify() == []


async def test_transfer_between_the_customers_accounts(atm: AtmNode) -> None:
    source = await atm.account_of(ALICE_PAN)
    opened = await atm.bank.call("alice", "account.open", {"product": "SAV-CNY"})
    assert opened.ok, opened
    target = str(opened.data["number"])
    before = await atm.bank.balance(source), await atm.bank.balance(target)
    async with atm.connected() as device:
        request = device.financial(
            "transfer", pan=ALICE_PAN, pin=PIN, amount_minor=5_000, to_account=target
        )
        answer = await device.send(request)
        assert answer.code == "00", answer.fields
        # Bob's account is not alice's to move money into from an ATM transfer between own
        # accounts, nor to draw from.
        bob = await atm.account_of(BOB_PAN)
        foreign = device.financial(
            "transfer", pan=ALICE_PAN, pin=PIN, amount_minor=5_000, to_account=bob
        )
        assert (await device.send(foreign)).code != "00"
    assert await atm.bank.balance(source) == before[0] - 5_000
    assert await atm.bank.balance(target) == before[1] + 5_000


async def test_authorization_then_reversal_releases_the_hold(atm: AtmNode) -> None:
    account = await atm.account_of(BOB_PAN)
    ledger = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=30_000)
        answer = await device.send(dict(authorization))
        assert (answer.fields["t"], answer.code) == ("0110", "00"), answer.fields
        assert answer.balances["02"] == ("CNY", ledger - 30_000)
        assert await atm.bank.balance(account) == ledger  # held, not moved
        assert await atm.held(account) == 30_000
        reversal = await device.send(device.reversal(authorization))
        assert (reversal.fields["t"], reversal.code, reversal.mac_ok) == ("0410", "00", True)
        assert await atm.held(account) == 0
        # Repeated (a new STAN, as an ATM's advice repeat): the same answer, nothing more.
        repeat = await device.send(device.reversal(authorization, repeat=True))
        assert (repeat.fields["t"], repeat.code) == ("0430", "00")
    assert await atm.held(account) == 0
    assert await atm.bank.balance(account) == ledger
    statuses = await atm.sql("SELECT service_id, status FROM transactions ORDER BY created_at")
    assert ("card.authorize", "reversed") in [tuple(row) for row in statuses]
    assert await atm.bank.verify() == []


async def test_reversal_of_a_purchase_and_of_an_unknown_original(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        purchase = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=7_700)
        assert (await device.send(dict(purchase))).code == "00"
        assert await atm.bank.balance(account) == before - 7_700
        assert (await device.send(device.reversal(purchase))).code == "00"
        assert await atm.bank.balance(account) == before
        assert (await device.send(device.reversal(purchase))).code == "00"
        assert await atm.bank.balance(account) == before
        # A reversal of something never received is answered and recorded; the original,
        # arriving late, is then refused and never executed.
        late = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=1_000)
        assert (await device.send(device.reversal(late))).code == "00"
        assert (await device.send(dict(late))).code == "94"
    assert await atm.bank.balance(account) == before
    recorded = await atm.sql("SELECT count(*) FROM transactions WHERE service_id = 'card.reverse'")
    assert recorded[0][0] >= 3
    assert await atm.bank.verify() == []


async def test_wrong_pins_block_the_card(atm: AtmNode) -> None:
    account = await atm.account_of(BOB_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected() as device:
        codes = [
            (await device.send(device.financial("balance", pan=BOB_PAN, pin="9999"))).code
            for _ in range(3)
        ]
        assert codes == ["55", "55", "75"]
        right = await device.send(device.financial("balance", pan=BOB_PAN, pin=PIN))
        assert right.code == "75"
        withdraw = device.financial("purchase", pan=BOB_PAN, pin=PIN, amount_minor=100)
        assert (await device.send(withdraw)).code == "75"
    assert await atm.card(BOB_PAN) == ("blocked", 3)
    assert await atm.bank.balance(account) == before


async def test_a_right_pin_resets_the_count(atm: AtmNode) -> None:
    async with atm.connected() as device:
        for _ in range(2):
            wrong = await device.send(device.financial("balance", pan=BOB_PAN, pin="0000"))
            assert wrong.code == "55"
        assert (await device.send(device.financial("balance", pan=BOB_PAN, pin=PIN))).code == "00"
        for _ in range(2):
            wrong = await device.send(device.financial("balance", pan=BOB_PAN, pin="0000"))
            assert wrong.code == "55"
    assert await atm.card(BOB_PAN) == ("active", 2)


async def test_bad_mac_is_refused_without_touching_the_account(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        request = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=50_000)
        body = bytearray(device.pack(dict(request)))
        body[-1] = ord("0") if body[-1] != ord("0") else ord("1")
        answer = await device.send_packed(request["11"], bytes(body))
        assert answer.code == "63"
        # A MAC under another key is just as wrong.
        stranger = atm.terminal("POS00001", mac_key=bytes(16))
        await stranger.connect(atm.host, atm.port)
        try:
            refused = await stranger.send(
                stranger.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=50_000)
            )
        finally:
            await stranger.close()
        assert refused.code == "63"
    assert await atm.bank.balance(account) == before


async def test_expired_blocked_lost_and_unknown_cards(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)

    async def purchase() -> str:
        async with atm.connected("POS00001") as device:
            request = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100)
            return (await device.send(request)).code

    await atm.card(ALICE_PAN, "expiry = '2001'")
    assert await purchase() == "54"
    await atm.card(ALICE_PAN, "expiry = '9912', status = 'blocked'")
    assert await purchase() == "62"
    await atm.card(ALICE_PAN, "status = 'lost'")
    assert await purchase() == "41"
    async with atm.connected() as device:
        unknown = device.financial("balance", pan="6234569999999999", pin=PIN)
        assert (await device.send(unknown)).code == "14"
    assert await atm.bank.balance(account) == before


async def test_insufficient_funds_and_a_foreign_account(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        huge = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=10**11)
        assert (await device.send(huge)).code == "51"
        bob = await atm.account_of(BOB_PAN)
        foreign = device.financial(
            "purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100, from_account=bob
        )
        assert (await device.send(foreign)).code == "57"
    assert await atm.bank.balance(account) == before


async def test_withdrawal_then_its_reversal(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected() as device:
        withdrawal = device.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=20_000)
        answer = await device.send(dict(withdrawal))
        assert answer.code == "00", answer.fields
        assert answer.balances["02"] == ("CNY", before - 20_000)
        assert await atm.bank.balance(account) == before - 20_000
        # The ATM could not dispense: it reverses, and the money comes back once.
        assert (await device.send(device.reversal(withdrawal))).code == "00"
        assert await atm.bank.balance(account) == before
        assert (await device.send(device.reversal(withdrawal, repeat=True))).code == "00"
    assert await atm.bank.balance(account) == before
    assert await atm.bank.verify() == []


async def _rule(atm: AtmNode, name: str, outcome: str) -> None:
    """Switch on a rule that fires on every withdrawal of 300.00 or more, with ``outcome``."""
    runtime = atm.bank.runtime
    async with runtime.sessions() as session, session.begin():
        await save_rule(
            session,
            RuleBody(
                name=name,
                expression="txn.amount >= 30000",
                outcome=outcome,
                score=50,
                mode="active",
            ),
            by="test",
            now=utc_now(),
            error_outcome="review",
        )
    assert atm.served is not None
    atm.served.risk.invalidate()  # the node's copy of the rules, re-read at its next check


async def test_risk_at_the_terminal_pin_is_the_challenge_and_review_is_a_decline(
    atm: AtmNode,
) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    await _rule(atm, "large_cash_challenge", "challenge")
    async with atm.connected() as device:
        # The card and its PIN, checked for this very message, are the second factor.
        withdrawal = device.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=30_000)
        assert (await device.send(withdrawal)).code == "00"
    assert await atm.bank.balance(account) == before - 30_000
    await _rule(atm, "large_cash_review", "review")
    async with atm.connected() as device:
        # Nobody can wait at an ATM for a reviewer: declined, nothing held or moved.
        withdrawal = device.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=30_000)
        assert (await device.send(withdrawal)).code == "59"
    assert await atm.bank.balance(account) == before - 30_000
    assert await atm.sql("SELECT count(*) FROM ledger_holds WHERE status = 'active'") == [(0,)]
    assert await atm.bank.verify() == []


async def test_a_partial_reversal_is_refused_and_moves_nothing(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    async with atm.connected() as device:
        withdrawal = device.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=10_000)
        assert (await device.send(dict(withdrawal))).code == "00"
        # The ATM dispensed 60.00 of 100.00: field 95 carries what was really dispensed.
        partial = device.reversal(withdrawal)
        partial["95"] = "000000006000" + "0" * 30
        assert (await device.send(partial)).code == "12"
    # Not reversed in full (the customer has 60.00 in hand): the original stands.
    assert await atm.bank.balance(account) == before - 10_000
    assert await atm.bank.verify() == []


async def test_an_authorization_nobody_completes_is_released_after_its_hold_period(
    atm: AtmNode,
) -> None:
    account = await atm.account_of(BOB_PAN)
    ledger = await atm.bank.balance(account)
    engine = atm.bank.runtime.engine
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=25_000)
        assert (await device.send(dict(authorization))).code == "00"
        assert await atm.held(account) == 25_000
        # Within its hold period the sweep leaves it alone.
        assert await release_expired_authorizations(engine, hold_days=7, now=utc_now()) == 0
        assert await atm.held(account) == 25_000
        # Eight days on, the sweep (of any node) releases it, once.
        later = utc_now() + dt.timedelta(days=8)
        assert await release_expired_authorizations(engine, hold_days=7, now=later) == 1
        assert await release_expired_authorizations(engine, hold_days=7, now=later) == 0
        assert await atm.held(account) == 0
        # The merchant's late reversal gets the sweep's answer and undoes nothing more.
        assert (await device.send(device.reversal(authorization))).code == "00"
    assert await atm.held(account) == 0
    assert await atm.bank.balance(account) == ledger
    statuses = await atm.sql("SELECT service_id, status FROM transactions ORDER BY created_at")
    assert ("card.authorize", "reversed") in [tuple(row) for row in statuses]
    assert await atm.bank.verify() == []
