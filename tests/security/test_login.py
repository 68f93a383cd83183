"""Logins over a real socket: password, second factor, device binding, lockout, and answers
that never tell whether a username exists."""

from __future__ import annotations

import aiohttp
import pyotp
import pytest
from sqlalchemy import text

from channelhub.kit.db import create_engine
from tests.security.conftest import SecureNode, call, login, otp

pytestmark = pytest.mark.asyncio


async def _journal_channels(node: SecureNode) -> list[str]:
    engine = create_engine(node.settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT channel FROM transactions WHERE service_id = 'account.balance'")
            )
            return [row.channel for row in rows]
    finally:
        await engine.dispose()


async def test_a_bound_device_logs_in_with_the_password_alone(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    status, body = await login(http, secure_node, "alice", channel="web")
    assert status == 200, body
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300

    number = secure_node.accounts["alice.CNY"]
    status, answer = await call(
        http, secure_node, "account.balance", {"account": number}, str(body["access_token"])
    )
    assert status == 200, answer
    assert answer["data"]["number"] == number  # type: ignore[index]
    # The transaction's channel is the token's, not a header's.
    assert await _journal_channels(secure_node) == ["web"]


async def test_a_new_device_needs_the_second_factor_and_is_then_bound(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    status, body = await login(http, secure_node, "bob", device="bob-new-tablet")
    assert status == 200, body
    assert body["mfa_required"] is True
    assert "access_token" not in body

    async with http.post(
        secure_node.url("/api/v1/auth/mfa"),
        json={"mfa_token": body["mfa_token"], "otp": otp("bob")},
    ) as answer:
        tokens = await answer.json()
    assert answer.status == 200, tokens
    assert {"access_token", "refresh_token"} <= set(tokens)

    # The challenge is spent: the same token and code do not work twice.
    async with http.post(
        secure_node.url("/api/v1/auth/mfa"),
        json={"mfa_token": body["mfa_token"], "otp": otp("bob")},
    ) as answer:
        again = await answer.json()
    assert answer.status == 401
    assert again["code"] == "CHALLENGE_INVALID"

    # The device is bound now: the password alone is enough from it.
    status, body = await login(http, secure_node, "bob", device="bob-new-tablet")
    assert status == 200, body
    assert "access_token" in body


async def test_a_totp_code_is_good_once(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    code = otp("alice")
    tokens = []
    for device in ("alice-laptop-1", "alice-laptop-2"):
        _, body = await login(http, secure_node, "alice", device=device)
        assert body["mfa_required"] is True, body
        async with http.post(
            secure_node.url("/api/v1/auth/mfa"),
            json={"mfa_token": body["mfa_token"], "otp": code},
        ) as answer:
            tokens.append((answer.status, (await answer.json()).get("code")))
    assert tokens[0][0] == 200
    # The same code again, even within its 30 seconds and for another challenge: refused.
    assert tokens[1] == (401, "OTP_INVALID")


async def test_wrong_codes_spend_the_challenge(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    _, body = await login(http, secure_node, "alice", device="alice-stolen-phone")
    token = body["mfa_token"]
    right = otp("alice")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        async with http.post(
            secure_node.url("/api/v1/auth/mfa"), json={"mfa_token": token, "otp": wrong}
        ) as answer:
            assert (await answer.json())["code"] == "OTP_INVALID"
    async with http.post(
        secure_node.url("/api/v1/auth/mfa"), json={"mfa_token": token, "otp": right}
    ) as answer:
        body = await answer.json()
    assert answer.status == 401
    assert body["code"] == "CHALLENGE_INVALID"


async def test_a_user_may_only_use_the_channels_it_has(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    engine = create_engine(secure_node.settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE customer_users SET channels = :c WHERE username = 'bob'"),
                {"c": '["mobile"]'},
            )
    finally:
        await engine.dispose()
    status, body = await login(http, secure_node, "bob", channel="web")
    assert status == 403
    assert body["code"] == "CHANNEL_NOT_ALLOWED"
    status, body = await login(http, secure_node, "bob", channel="mobile")
    assert status == 200, body


def _answer(status: int, body: dict[str, object]) -> tuple[int, object, object, object]:
    """What a caller learns from a refusal (the refusal id differs on every answer)."""
    return status, body.get("code"), body.get("message"), body.get("details")


async def _verifications(http: aiohttp.ClientSession, node: SecureNode) -> float:
    async with http.get(node.url("/metrics")) as answer:
        text_body = await answer.text()
    for line in text_body.splitlines():
        if line.startswith("channelhub_password_verifications_total "):
            return float(line.split()[1])
    raise AssertionError("the password verification counter is not exported")


async def test_lockout_engages_and_an_unknown_name_is_answered_like_a_real_one(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    real, ghost = [], []
    for _ in range(5):
        before = await _verifications(http, secure_node)
        real.append(_answer(*await login(http, secure_node, "bob", password="wrong-password-1")))
        after_real = await _verifications(http, secure_node)
        ghost.append(
            _answer(*await login(http, secure_node, "nobody", password="wrong-password-1"))
        )
        after_ghost = await _verifications(http, secure_node)
        # Both paths run exactly one argon2id verification: the same work, the same time.
        assert after_real - before == 1
        assert after_ghost - after_real == 1
    assert real == ghost
    assert {answer[:2] for answer in real} == {(401, "INVALID_CREDENTIALS")}

    # Locked now, even with the right password; and the unknown name is locked alike.
    locked_real = await login(http, secure_node, "bob")
    locked_ghost = await login(http, secure_node, "nobody", password="bob-Demo-2026")
    assert locked_real[0] == 429
    assert locked_real[1]["code"] == "LOGIN_LOCKED"
    assert _answer(*locked_real)[:3] == _answer(*locked_ghost)[:3]
    # Another user is not affected.
    status, body = await login(http, secure_node, "alice")
    assert status == 200, body


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"username": "alice"}, "VALIDATION_FAILED", 400),
        (
            {"username": "alice", "password": "x", "device_id": "d", "extra": 1},
            "VALIDATION_FAILED",
            400,
        ),
        ({"username": 7, "password": "x", "device_id": "d"}, "VALIDATION_FAILED", 400),
        ({"username": "alice", "password": "x" * 129, "device_id": "d"}, "VALIDATION_FAILED", 400),
        ({"username": "a" * 65, "password": "x", "device_id": "d"}, "VALIDATION_FAILED", 400),
        ({"username": "alice", "password": "x", "device_id": "d\n1"}, "VALIDATION_FAILED", 400),
        (
            {"username": "alice", "password": "x", "device_id": "d", "channel": "teller"},
            "VALIDATION_FAILED",
            400,
        ),
        ([1, 2], "MALFORMED_REQUEST", 400),
    ],
)
async def test_hostile_login_bodies_are_refused_without_echoing_them(
    secure_node: SecureNode,
    http: aiohttp.ClientSession,
    body: object,
    code: str,
    status: int,
) -> None:
    async with http.post(secure_node.url("/api/v1/auth/login"), json=body) as answer:
        refused = await answer.json()
        raw = await answer.text()
    assert (answer.status, refused["code"]) == (status, code)
    assert "x" * 20 not in raw
    assert answer.headers["Cache-Control"] == "no-store"


async def test_oversized_and_non_json_logins_are_refused(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        secure_node.url("/api/v1/auth/login"),
        data=b"{" + b" " * 10_000 + b"}",
        headers={"Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 413
    async with http.post(
        secure_node.url("/api/v1/auth/login"),
        data=b"username=alice",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as answer:
        assert answer.status == 415
    async with http.post(
        secure_node.url("/api/v1/auth/login"),
        data=b'{"username": "alice", ',
        headers={"Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 400


async def test_a_customer_enrols_totp_with_a_provisioning_uri(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    engine = create_engine(secure_node.settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE credentials SET totp_sealed = NULL, totp_confirmed_at = NULL, "
                    "totp_last_step = NULL"
                )
            )
    finally:
        await engine.dispose()
    # No second factor yet: a new device logs in with the password alone.
    status, tokens = await login(http, secure_node, "bob", device="bob-laptop")
    assert status == 200, tokens
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    async with http.post(secure_node.url("/api/v1/auth/totp/enroll"), headers=bearer) as answer:
        enrolment = await answer.json()
    assert answer.status == 200, enrolment
    secret = enrolment["secret"]
    assert enrolment["provisioning_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in enrolment["provisioning_uri"]

    code = pyotp.TOTP(secret).now()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for otp_code, status_code in ((wrong, 401), ("12345", 400), (code, 200)):
        async with http.post(
            secure_node.url("/api/v1/auth/totp/confirm"), json={"otp": otp_code}, headers=bearer
        ) as answer:
            assert answer.status == status_code, await answer.text()
    async with http.post(secure_node.url("/api/v1/auth/totp/enroll"), headers=bearer) as answer:
        assert answer.status == 403  # enrolled: no silent replacement
    async with http.post(secure_node.url("/api/v1/auth/totp/enroll")) as answer:
        assert answer.status == 401
    # From now on a new device needs the code.
    status, body = await login(http, secure_node, "bob", device="bob-other-laptop")
    assert body.get("mfa_required") is True, body
