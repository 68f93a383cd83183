"""Access and refresh tokens over a real socket: every forgery refused, revocation on every
node, refresh rotation with reuse detection."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from channelhub.cau.service import CUSTOMER_SCOPES
from channelhub.kit.clock import utc_now
from channelhub.kit.db import create_engine
from channelhub.runtime import master_key
from channelhub.security.ssm import SoftwareSecurityModule
from channelhub.security.tokens import KeyPair, TokenSigner
from tests.conftest import serving
from tests.security.conftest import SecureNode, call, login, mfa_login, secure_settings

pytestmark = pytest.mark.asyncio


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def _node_key(node: SecureNode) -> KeyPair:
    """The node's real signing key, as an attacker who stole it from the database would hold
    it only with the master key too."""
    engine = create_engine(node.settings.database_url, pool_size=1)
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
    ssm = SoftwareSecurityModule(master_key(node.settings))
    return KeyPair.from_pem(row.kid, ssm.open(row.private_sealed, f"signing-key:{row.kid}"))


async def _alice(http: aiohttp.ClientSession, node: SecureNode) -> dict[str, object]:
    status, body = await login(http, node, "alice")
    assert status == 200, body
    return body


async def _balance(
    http: aiohttp.ClientSession, node: SecureNode, token: str, **headers: str
) -> tuple[int, dict[str, object]]:
    return await call(
        http,
        node,
        "account.balance",
        {"account": node.accounts["alice.CNY"]},
        token,
        **headers,
    )


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload))


async def test_the_real_token_works_and_every_forgery_is_refused(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    tokens = await _alice(http, secure_node)
    real = str(tokens["access_token"])
    status, body = await _balance(http, secure_node, real)
    assert status == 200, body

    key = await _node_key(secure_node)
    header, payload = _claims(real)
    now = utc_now()
    extra = payload["ext"]
    assert isinstance(extra, dict)

    def forge(
        *,
        with_key: KeyPair = key,
        issuer: str = "channelhub",
        audience: str = "channelhub-api",
        at: dt.datetime = now,
    ) -> str:
        signer = TokenSigner(with_key, issuer=issuer, audience=audience, lifetime=300)
        return signer.issue(
            subject_kind="customer",
            subject_id=str(payload["sub"]),
            session_id=str(payload["sid"]),
            channel="mobile",
            auth_level="mfa",
            scopes=CUSTOMER_SCOPES,
            extra=extra,
            now=at,
        )

    signing_input, signature = real.rsplit(".", 1)
    head, body_part = signing_input.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    lifted = _b64(json.dumps({**payload, "acr": "mfa"}).encode())

    none_header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": key.kid}).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    public_pem = key.public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    hs_signature = _b64(
        hmac.new(public_pem, f"{hs_header}.{body_part}".encode(), hashlib.sha256).digest()
    )
    forgeries = {
        "tampered signature": f"{signing_input}.{flipped}",
        "tampered payload": f"{head}.{lifted}.{signature}",
        "alg none": f"{none_header}.{body_part}.",
        "HS256 keyed with the public key": f"{hs_header}.{body_part}.{hs_signature}",
        "another key, same kid": forge(with_key=KeyPair.generate(key.kid)),
        "expired": forge(at=now - dt.timedelta(seconds=400)),
        "not yet valid": forge(at=now + dt.timedelta(seconds=120)),
        "another audience": forge(audience="other-bank-api"),
        "another issuer": forge(issuer="evil"),
        "not a JWT": "not.a.jwt",
        "garbage": "x" * 500,
    }
    for name, forged in forgeries.items():
        status, body = await _balance(http, secure_node, forged)
        assert (status, body["code"]) == (401, "TOKEN_INVALID"), name
    # The right key, audience and issuer still verify: the refusals above are about the
    # forgery, not about the test's own signer.
    status, body = await _balance(http, secure_node, forge())
    assert status == 200, body
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key.kid


async def test_authorization_headers_that_are_not_bearer_tokens_are_refused(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    number = secure_node.accounts["alice.CNY"]
    for value in ("Basic YWxpY2U6eA==", "Bearer", "Bearer " + "a" * 5000, "token"):
        async with http.post(
            secure_node.url("/api/v1/services/account.balance"),
            json={"account": number},
            headers={"Authorization": value},
        ) as answer:
            body = await answer.json()
        assert (answer.status, body["code"]) == (401, "TOKEN_INVALID"), value
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_token_fixes_the_channel_and_the_device(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    token = str((await _alice(http, secure_node))["access_token"])
    status, body = await _balance(http, secure_node, token, **{"X-Channel": "web"})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    status, body = await _balance(http, secure_node, token, **{"X-Device-Id": "someone-else"})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    status, body = await _balance(
        http, secure_node, token, **{"X-Channel": "mobile", "X-Device-Id": "alice-phone"}
    )
    assert status == 200, body


async def test_jwks_publishes_the_public_key_only(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    async with http.get(secure_node.url("/.well-known/jwks.json")) as answer:
        jwks = await answer.json()
    assert answer.status == 200
    key = await _node_key(secure_node)
    published = {k["kid"]: k for k in jwks["keys"]}
    assert published[key.kid]["kty"] == "OKP"
    assert published[key.kid]["crv"] == "Ed25519"
    assert published[key.kid]["alg"] == "EdDSA"
    assert all("d" not in k for k in jwks["keys"])
    # A client can verify a token with what is published.
    token = str((await _alice(http, secure_node))["access_token"])
    verifying = KeyPair.from_jwk(published[key.kid])
    head, payload, signature = token.split(".")
    verifying.public.verify(_unb64(signature), f"{head}.{payload}".encode())


async def test_refresh_tokens_rotate_and_reuse_revokes_the_session(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    first = await _alice(http, secure_node)

    async def refresh(token: object) -> tuple[int, dict[str, object]]:
        async with http.post(
            secure_node.url("/api/v1/auth/refresh"), json={"refresh_token": token}
        ) as answer:
            return answer.status, await answer.json()

    status, second = await refresh(first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert (await _balance(http, secure_node, str(second["access_token"])))[0] == 200

    # The spent token comes back: somebody copied it. The whole session dies.
    status, body = await refresh(first["refresh_token"])
    assert (status, body["code"]) == (401, "TOKEN_INVALID")
    status, body = await refresh(second["refresh_token"])
    assert (status, body["code"]) == (401, "TOKEN_INVALID")
    for access in (first["access_token"], second["access_token"]):
        status, body = await _balance(http, secure_node, str(access))
        assert (status, body["code"]) == (401, "TOKEN_INVALID")
    # Another session of the same user lives on.
    assert (
        await _balance(http, secure_node, str((await _alice(http, secure_node))["access_token"]))
    )[0] == 200


async def test_logout_revokes_the_session_on_every_node(
    secure_node: SecureNode, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    second_settings = secure_settings(secure_node.settings.database_url, tmp_path / "node2")
    async with serving(second_settings) as other_base:
        other = SecureNode(other_base, second_settings, secure_node.accounts)
        tokens = await mfa_login(http, secure_node, "alice", "alice-desktop")
        access = str(tokens["access_token"])
        # Any node verifies a token another node issued.
        assert (await _balance(http, other, access))[0] == 200

        async with http.post(
            secure_node.url("/api/v1/auth/logout"),
            json={},
            headers={"Authorization": f"Bearer {access}"},
        ) as answer:
            assert answer.status == 200
            assert (await answer.json()) == {"logged_out": True}
        status, body = await _balance(http, secure_node, access)
        assert (status, body["code"]) == (401, "TOKEN_INVALID")
        # The other node learns of it at its next sync (every 0.2 s in this test).
        for _ in range(50):
            status, body = await _balance(http, other, access)
            if status == 401:
                break
            await asyncio.sleep(0.1)
        assert (status, body["code"]) == (401, "TOKEN_INVALID")
        async with http.post(
            other.url("/api/v1/auth/refresh"), json={"refresh_token": tokens["refresh_token"]}
        ) as answer:
            assert answer.status == 401


async def test_a_rotated_key_keeps_old_tokens_valid_and_signs_new_ones(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    from channelhub.runtime import Runtime

    old = str((await _alice(http, secure_node))["access_token"])
    runtime = Runtime.build(secure_node.settings)
    try:
        await runtime.security.start()
        kid = await runtime.security.rotate_key()
    finally:
        await runtime.close()
    # The serving node has not synced its keys yet: the new kid makes it read them once.
    new = str((await _alice(http, secure_node))["access_token"])
    for _ in range(150):  # the serving node switches signer at its next full sync
        if _claims(new)[0]["kid"] == kid:
            break
        await asyncio.sleep(0.1)
        new = str((await _alice(http, secure_node))["access_token"])
    assert _claims(new)[0]["kid"] == kid
    assert (await _balance(http, secure_node, old))[0] == 200
    assert (await _balance(http, secure_node, new))[0] == 200
