"""Step-up over a real socket: a transfer over the threshold needs a one-time code bound to
its amount and beneficiary; a code bound to another transfer is refused."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import aiohttp
import pytest
from sqlalchemy import text

from channelhub.kit.db import create_engine
from tests.security.conftest import SecureNode, login, otp

pytestmark = pytest.mark.asyncio


async def _scalar(node: SecureNode, sql: str, **params: object) -> object:
    engine = create_engine(node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(sql), params)
    finally:
        await engine.dispose()


async def _entries(node: SecureNode) -> int:
    return int(str(await _scalar(node, "SELECT COUNT(*) FROM ledger_entries")))


class Client:
    """alice's app: her token, and transfers with an idempotency key each."""

    def __init__(self, http: aiohttp.ClientSession, node: SecureNode, token: str) -> None:
        self.http, self.node, self.token = http, node, token

    async def transfer(
        self,
        amount: str,
        to: str,
        *,
        key: str,
        challenge: str | None = None,
        code: str | None = None,
    ) -> tuple[int, dict[str, object], Mapping[str, str]]:
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}
        if challenge is not None:
            headers["X-Step-Up-Challenge"] = challenge
        if code is not None:
            headers["X-Step-Up-OTP"] = code
        payload = {
            "from_account": self.node.accounts["alice.CNY"],
            "to_account": to,
            "amount": amount,
            "currency": "CNY",
        }
        async with self.http.post(
            self.node.url("/api/v1/services/transfer.internal"), json=payload, headers=headers
        ) as answer:
            return (
                answer.status,
                await answer.json(),
                {k.lower(): v for k, v in answer.headers.items()},
            )


@pytest.fixture
async def alice(secure_node: SecureNode, http: aiohttp.ClientSession) -> Client:
    status, body = await login(http, secure_node, "alice")
    assert status == 200, body
    return Client(http, secure_node, str(body["access_token"]))


async def test_a_small_transfer_needs_no_step_up(alice: Client) -> None:
    status, body, _ = await alice.transfer("100.00", alice.node.accounts["bob.CNY"], key="small-1")
    assert status == 200, body
    assert body["status"] == "succeeded"


async def test_a_large_transfer_succeeds_only_with_the_code_bound_to_it(alice: Client) -> None:
    bob = alice.node.accounts["bob.CNY"]
    key = f"large-{uuid.uuid4()}"
    entries = await _entries(alice.node)
    status, body, _ = await alice.transfer("6000.00", bob, key=key)
    assert (status, body["code"]) == (401, "STEP_UP_REQUIRED")
    details = body["details"]
    assert isinstance(details, dict)
    assert details["confirms"] == {
        "service": "transfer.internal",
        "amount": "6000.00",
        "currency": "CNY",
        "beneficiary": bob,
    }
    challenge = str(details["challenge"])
    # Nothing ran: no journal row under the key, no posting.
    assert (
        await _scalar(
            alice.node, "SELECT COUNT(*) FROM transactions WHERE idempotency_key = :k", k=key
        )
        == 0
    )
    assert await _entries(alice.node) == entries

    code = otp("alice")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    status, body, _ = await alice.transfer("6000.00", bob, key=key, challenge=challenge, code=wrong)
    assert (status, body["code"]) == (401, "OTP_INVALID")

    status, body, _ = await alice.transfer("6000.00", bob, key=key, challenge=challenge, code=code)
    assert status == 200, body
    assert body["status"] == "succeeded"

    # The app retries (its answer got lost): the same request with the same proof replays.
    status, again, headers = await alice.transfer(
        "6000.00", bob, key=key, challenge=challenge, code=code
    )
    assert status == 200
    assert again["txn_id"] == body["txn_id"]
    assert headers["idempotent-replayed"] == "true"
    assert await _entries(alice.node) == entries + 1
    # A new transfer cannot ride on the spent challenge.
    status, body, _ = await alice.transfer(
        "6000.00", bob, key=f"other-{uuid.uuid4()}", challenge=challenge, code=code
    )
    assert (status, body["code"]) == (401, "CHALLENGE_INVALID")


async def test_a_code_bound_to_another_transfer_is_refused(
    alice: Client, http: aiohttp.ClientSession
) -> None:
    bob = alice.node.accounts["bob.CNY"]
    acme = str(
        await _scalar(
            alice.node,
            "SELECT a.number FROM accounts a JOIN customer_users u ON u.customer_id = "
            "a.customer_id WHERE u.username = 'acme' AND a.currency = 'CNY'",
        )
    )
    key = f"bound-{uuid.uuid4()}"
    entries = await _entries(alice.node)
    _, body, _ = await alice.transfer("6000.00", bob, key=key)
    challenge = str(body["details"]["challenge"])  # type: ignore[index]
    code = otp("alice")
    # Another amount, another beneficiary, another request: each refused, nothing posted.
    for amount, to, other_key in (
        ("7000.00", bob, key),
        ("6000.00", acme, key),
        ("6000.00", bob, f"another-{uuid.uuid4()}"),
    ):
        status, refused, _ = await alice.transfer(
            amount, to, key=other_key, challenge=challenge, code=code
        )
        assert (status, refused["code"]) == (401, "CHALLENGE_INVALID"), (amount, to)
    assert await _entries(alice.node) == entries
    # bob cannot answer alice's challenge either, even with his own valid code.
    _, tokens = await login(http, alice.node, "bob")
    bob_client = Client(http, alice.node, str(tokens["access_token"]))
    status, refused, _ = await bob_client.transfer(
        "6000.00", bob, key=key, challenge=challenge, code=otp("bob")
    )
    assert refused["code"] in ("CHALLENGE_INVALID", "FORBIDDEN"), refused
    # The code was not spent by the refusals: the transfer it is bound to goes through.
    status, body, _ = await alice.transfer("6000.00", bob, key=key, challenge=challenge, code=code)
    assert status == 200, body


@pytest.mark.parametrize(
    ("challenge", "code"),
    [
        ("short", "123456"),
        ("x" * 200, "123456"),
        ("a" * 43, "12345"),
        ("a" * 43, "abcdef"),
        ("a" * 43, None),
    ],
)
async def test_malformed_step_up_headers_are_refused(
    alice: Client, challenge: str, code: str | None
) -> None:
    status, body, _ = await alice.transfer(
        "6000.00", alice.node.accounts["bob.CNY"], key="malformed", challenge=challenge, code=code
    )
    assert (status, body["code"]) == (400, "VALIDATION_FAILED")
