"""What the teller desk refuses, and that a refusal changes nothing: malformed and oversized
bodies, missing, forged, expired and wrong-kind tokens, staff of other roles, customers the
desk cannot identify, and another customer's accounts and cards."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import uuid

import aiohttp
import pytest
from sqlalchemy import text

from channelhub.cau.numbers import luhn_valid, mod97_valid
from channelhub.kit.clock import utc_now
from channelhub.kit.db import create_engine
from channelhub.runtime import master_key
from channelhub.security.ssm import SoftwareSecurityModule
from channelhub.security.tokens import KeyPair, TokenSigner
from tests.channels_teller.conftest import ALICE_CARD, BOB_CARD, Desk, alice, desk_token
from tests.security.conftest import login

pytestmark = pytest.mark.asyncio


async def _expired_teller_token(desk: Desk, real: str) -> str:
    """The teller's own token, re-signed with the node's key as issued ten minutes ago."""
    engine = create_engine(desk.node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT kid, private_sealed FROM signing_keys "
                        "WHERE retired_at IS NULL ORDER BY created_at DESC"
                    )
                )
            ).first()
    finally:
        await engine.dispose()
    assert row is not None
    ssm = SoftwareSecurityModule(master_key(desk.node.settings))
    key = KeyPair.from_pem(row.kid, ssm.open(row.private_sealed, f"signing-key:{row.kid}"))
    part = real.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    signer = TokenSigner(key, issuer="channelhub", audience="channelhub-api", lifetime=300)
    return signer.issue(
        subject_kind="staff",
        subject_id=str(claims["sub"]),
        session_id=str(claims["sid"]),
        channel="teller",
        auth_level="mfa",
        scopes=frozenset(claims["scope"].split()),
        extra=claims["ext"],
        now=utc_now() - dt.timedelta(seconds=600),
    )


async def test_bad_requests_are_refused_and_change_nothing(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")
    account = desk.accounts["alice.CNY"]
    before = (await desk.balance(account), await desk.cash("0101"))
    deposit = {"account": account, "amount": "10.00", "currency": "CNY"}
    url = desk.node.url("/teller/v1/services/cash.deposit")
    headers = {
        "Authorization": f"Bearer {teller}",
        "Content-Type": "application/json",
        "Idempotency-Key": "bad-1",
    }

    async with desk.http.post(url, data=b'{"input": {', headers=headers) as answer:
        assert (answer.status, (await answer.json())["code"]) == (400, "MALFORMED_REQUEST")
    async with desk.http.post(url, data=b"[1, 2]", headers=headers) as answer:
        assert (answer.status, (await answer.json())["code"]) == (400, "MALFORMED_REQUEST")
    huge = b'{"input": {"memo": "' + b"x" * 2_000_000 + b'"}}'
    async with desk.http.post(url, data=io.BytesIO(huge), headers=headers) as answer:
        assert (answer.status, (await answer.json())["code"]) == (413, "PAYLOAD_TOO_LARGE")

    cases = [
        ({"input": deposit, "customer": alice(), "extra": 1}, "VALIDATION_FAILED", 400),
        ({"input": [deposit], "customer": alice()}, "VALIDATION_FAILED", 400),
        ({"input": {**deposit, "amount": "-5.00"}, "customer": alice()}, "INVALID_AMOUNT", 400),
        ({"input": {**deposit, "amount": "1e3"}, "customer": alice()}, "INVALID_AMOUNT", 400),
        ({"input": {**deposit, "bogus": True}, "customer": alice()}, "VALIDATION_FAILED", 400),
        # Both ways of identifying at once, or a card without its PIN.
        (
            {"input": deposit, "customer": {**alice(), "card": ALICE_CARD, "pin": "1234"}},
            "VALIDATION_FAILED",
            400,
        ),
        ({"input": deposit, "customer": {"card": ALICE_CARD}}, "VALIDATION_FAILED", 400),
        # Nobody has this document; the right number under another type is not hers.
        (
            {"input": deposit, "customer": {"id_document": {"type": "resident_id",
                                                            "number": "999999999999999999"}}},
            "CUSTOMER_NOT_IDENTIFIED",
            422,
        ),
        (
            {"input": deposit, "customer": {"id_document": {
                "type": "passport", "number": alice()["id_document"]["number"]}}},
            "CUSTOMER_NOT_IDENTIFIED",
            422,
        ),
        # The wrong PIN, and a card the bank never issued.
        ({"input": deposit, "customer": {"card": ALICE_CARD, "pin": "9999"}},
         "CUSTOMER_NOT_IDENTIFIED", 422),
        ({"input": deposit, "customer": {"card": "6234569999999999", "pin": "1234"}},
         "CUSTOMER_NOT_IDENTIFIED", 422),
        # No customer identified: the service acts for nobody.
        ({"input": deposit}, "FORBIDDEN", 403),
    ]  # fmt: skip
    for index, (body, code, status) in enumerate(cases):
        sent = {**headers, "Idempotency-Key": f"bad-case-{index}"}
        async with desk.http.post(url, json=body, headers=sent) as answer:
            got = await answer.json()
        assert (answer.status, got["code"]) == (status, code), (index, got)
        # A PIN is never echoed (the ids aside, which are random hex).
        shown = json.dumps({k: v for k, v in got.items() if k != "txn_id"})
        assert "9999" not in shown
        assert "1234" not in shown

    # No Idempotency-Key on a service that needs one.
    status, body = await desk.call(teller, "cash.deposit", deposit, customer=alice(), key=None)
    assert (status, body["code"]) == (400, "IDEMPOTENCY_KEY_REQUIRED")
    assert (await desk.balance(account), await desk.cash("0101")) == before


async def test_only_desk_staff_with_a_valid_desk_token_get_in(desk: Desk) -> None:
    account = desk.accounts["alice.CNY"]
    deposit = {"account": account, "amount": "10.00", "currency": "CNY"}
    before = await desk.balance(account)
    teller = await desk_token(desk.http, desk.node, "teller1")

    status, body = await desk.call(None, "cash.deposit", deposit, customer=alice())
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    for token in ("garbage", teller[:-4] + "AAAA", await _expired_teller_token(desk, teller)):
        status, body = await desk.call(token, "cash.deposit", deposit, customer=alice())
        assert (status, body["code"]) == (401, "TOKEN_INVALID"), body
    # A customer's own token is no desk token.
    status, tokens = await login(desk.http, desk.node, "alice")
    assert status == 200, tokens
    status, body = await desk.call(
        str(tokens["access_token"]), "cash.deposit", deposit, customer=alice()
    )
    assert (status, body["code"]) == (403, "FORBIDDEN")
    # Staff who do not serve at the desk, and a token issued for the console.
    for username, channel in (("auditor1", "teller"), ("admin", "teller"), ("teller2", "console")):
        token = await desk_token(desk.http, desk.node, username, channel=channel)
        status, body = await desk.call(token, "cash.deposit", deposit, customer=alice())
        assert (status, body["code"]) == (403, "FORBIDDEN"), (username, body)
    # And a desk token is no customer token on the mobile API.
    async with desk.http.post(
        desk.node.url("/api/v1/services/account.list"),
        json={},
        headers={"Authorization": f"Bearer {teller}"},
    ) as answer:
        assert answer.status == 403
    assert await desk.balance(account) == before


async def test_the_teller_acts_only_for_the_identified_customer(desk: Desk) -> None:
    teller = await desk_token(desk.http, desk.node, "teller1")
    bobs = desk.accounts["bob.CNY"]
    before = await desk.balance(bobs)
    for service, payload in (
        ("cash.withdraw", {"account": bobs, "amount": "10.00", "currency": "CNY"}),
        ("cash.deposit", {"account": bobs, "amount": "10.00", "currency": "CNY"}),
        ("account.close", {"account": bobs}),
        (
            "transfer.internal",
            {
                "from_account": bobs,
                "to_account": desk.accounts["alice.CNY"],
                "amount": "10.00",
                "currency": "CNY",
            },
        ),
        (
            "card.block",
            {"card": desk.node.accounts.get("bob.card", "") or await _card(desk, "bob")},
        ),
    ):
        status, body = await desk.call(teller, service, payload, customer=alice())
        assert (status, body["code"]) == (403, "FORBIDDEN"), (service, body)
    assert await desk.balance(bobs) == before
    # Identified by his own card and PIN, bob may.
    status, body = await desk.call(
        teller,
        "cash.withdraw",
        {"account": bobs, "amount": "10.00", "currency": "CNY"},
        customer={"card": BOB_CARD, "pin": "1234"},
    )
    assert (status, body["code"]) == (200, "OK"), body


async def _card(desk: Desk, username: str) -> str:
    rows = await desk.sql(
        "SELECT c.id FROM cards c JOIN customer_users u ON u.customer_id = c.customer_id "
        "WHERE u.username = :u",
        u=username,
    )
    return str(uuid.UUID(str(rows[0][0])))


async def test_onboarding_and_closing_an_account(desk: Desk, http: aiohttp.ClientSession) -> None:
    teller = await desk_token(desk.http, desk.node, "teller2")  # branch 0102
    kyc = {
        "kind": "person",
        "name": "Chen Xiao",
        "id_type": "resident_id",
        "id_number": "440101199202023456",
        "phone": "+8613800000099",
        "email": "chen@example.com",
        "segment": "retail",
        "product": "CUR-CNY",
    }
    status, body = await desk.call(teller, "customer.onboard", kyc)
    assert (status, body["code"]) == (200, "OK"), body
    made = body["data"]
    assert luhn_valid(made["customer_number"])
    assert mod97_valid(made["account"])
    assert made["account"].startswith("0102")
    assert made["currency"] == "CNY"
    status, body = await desk.call(teller, "customer.onboard", kyc)
    assert (status, body["code"]) == (409, "CUSTOMER_EXISTS")
    status, body = await desk.call(teller, "customer.onboard", {**kyc, "kind": "robot"})
    assert (status, body["code"]) == (400, "VALIDATION_FAILED")

    chen = {"id_document": {"type": "resident_id", "number": kyc["id_number"]}}
    account = made["account"]
    money = {"account": account, "amount": "100.00", "currency": "CNY"}
    status, body = await desk.call(teller, "cash.deposit", money, customer=chen)
    assert (status, body["data"]["available_balance"]) == (200, "100.00"), body
    status, body = await desk.call(teller, "account.close", {"account": account}, customer=chen)
    assert (status, body["code"]) == (422, "ACCOUNT_NOT_EMPTY"), body
    assert body["details"]["balance"] == "100.00"
    status, body = await desk.call(teller, "cash.withdraw", money, customer=chen)
    assert (status, body["data"]["available_balance"]) == (200, "0.00"), body
    status, body = await desk.call(teller, "account.close", {"account": account}, customer=chen)
    assert (status, body["code"], body["data"]["status"]) == (200, "OK", "closed"), body
    status, body = await desk.call(teller, "cash.deposit", money, customer=chen)
    assert (status, body["code"]) == (422, "ACCOUNT_INACTIVE")
    # Closing blocks the cards on the account: alice's card, through the desk.
    status, body = await desk.call(
        teller, "card.block", {"card": await _card(desk, "alice")}, customer=alice()
    )
    assert (status, body["data"]["status"]) == (200, "blocked"), body
