"""The partner channel over a real socket: client credentials, signed requests (replays, stale
timestamps and tampered bodies refused), and consent as the only window on a customer."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import orjson
import pytest
from openapi_spec_validator import validate

from channelhub.demo.identities import DEMO_CONSENT_ID, DEMO_PARTNER_ID, DEMO_PARTNER_SECRET
from channelhub.runtime import Runtime
from channelhub.security.partners import register_app
from channelhub.security.signing import sign
from tests.security.conftest import SecureNode, call, login, secure_bank, secure_settings
from tests.support.databases import redis_keyspace

pytestmark = pytest.mark.asyncio

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def app_token(
    http: aiohttp.ClientSession,
    node: SecureNode,
    client_id: str = DEMO_PARTNER_ID,
    secret: str = DEMO_PARTNER_SECRET,
) -> tuple[int, dict[str, object]]:
    async with http.post(
        node.url("/oauth/token"),
        data="grant_type=client_credentials",
        headers={**FORM, "Authorization": _basic(client_id, secret)},
    ) as answer:
        return answer.status, await answer.json()


class Partner:
    """The demo fintech app: signs every call as docs/partners.md says."""

    def __init__(self, http: aiohttp.ClientSession, node: SecureNode, token: str) -> None:
        self.http, self.node, self.token = http, node, token

    async def call(
        self,
        service: str,
        payload: Mapping[str, object],
        *,
        consent: str | None = str(DEMO_CONSENT_ID),
        nonce: str | None = None,
        timestamp: int | None = None,
        sent_body: bytes | None = None,
        client_id: str = DEMO_PARTNER_ID,
    ) -> tuple[int, dict[str, object]]:
        path = f"/open/v1/services/{service}"
        body = orjson.dumps(payload)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or uuid.uuid4().hex
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "X-Client-Id": client_id,
            "X-Timestamp": stamp,
            "X-Nonce": nonce,
            "X-Signature": sign(DEMO_PARTNER_SECRET, "POST", path, "", stamp, nonce, body),
        }
        if consent is not None:
            headers["X-Consent-Id"] = consent
        async with self.http.post(
            self.node.url(path), data=sent_body if sent_body is not None else body, headers=headers
        ) as answer:
            return answer.status, await answer.json()


@pytest.fixture
async def partner(secure_node: SecureNode, http: aiohttp.ClientSession) -> Partner:
    status, body = await app_token(http, secure_node)
    assert status == 200, body
    return Partner(http, secure_node, str(body["access_token"]))


async def test_the_token_endpoint_speaks_oauth2(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    status, body = await app_token(http, secure_node)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert set(str(body["scope"]).split()) == {"accounts:read", "statements:read"}
    # Wrong secret and unknown client: the same answer.
    assert await app_token(http, secure_node, secret="wrong-secret-123") == (
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
    )
    assert (await app_token(http, secure_node, client_id="nobody"))[1]["error"] == "invalid_client"
    for data, headers, error in (
        (
            "grant_type=password",
            {**FORM, "Authorization": _basic(DEMO_PARTNER_ID, "x")},
            "unsupported_grant_type",
        ),
        (
            '{"grant_type": "client_credentials"}',
            {"Content-Type": "application/json"},
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=payments:write",
            {**FORM, "Authorization": _basic(DEMO_PARTNER_ID, DEMO_PARTNER_SECRET)},
            "invalid_scope",
        ),
        ("grant_type=client_credentials", FORM, "invalid_client"),
        ("grant_type=client_credentials&" + "x=" + "y" * 5000, FORM, "invalid_request"),
    ):
        async with http.post(secure_node.url("/oauth/token"), data=data, headers=headers) as answer:
            assert (await answer.json())["error"] == error, data[:40]
    # Credentials in the form work too, and a narrower scope may be asked for.
    async with http.post(
        secure_node.url("/oauth/token"),
        data=f"grant_type=client_credentials&client_id={DEMO_PARTNER_ID}"
        f"&client_secret={DEMO_PARTNER_SECRET}&scope=accounts:read",
        headers=FORM,
    ) as answer:
        narrow = await answer.json()
    assert narrow["scope"] == "accounts:read"


async def test_the_app_sees_what_the_consent_covers_and_nothing_else(partner: Partner) -> None:
    accounts = partner.node.accounts
    status, body = await partner.call("account.balance", {"account": accounts["alice.CNY"]})
    assert status == 200, body
    assert body["data"]["number"] == accounts["alice.CNY"]  # type: ignore[index]
    status, body = await partner.call("account.list", {})
    assert status == 200, body
    listed = [a["number"] for a in body["data"]["accounts"]]  # type: ignore[index]
    assert listed == [accounts["alice.CNY"]]
    # alice's own USD account is outside the consent; bob's is not hers at all.
    for number in (accounts["alice.USD"], accounts["bob.CNY"]):
        status, body = await partner.call("account.balance", {"account": number})
        assert (status, body["code"]) == (403, "FORBIDDEN"), number
    # Without a consent the app acts for no customer.
    status, body = await partner.call("account.list", {}, consent=None)
    assert status in (401, 403), body
    # A service not released to partners, and one never consented to (moving money).
    status, body = await partner.call(
        "transfer.internal",
        {
            "from_account": accounts["alice.CNY"],
            "to_account": accounts["bob.CNY"],
            "amount": "1.00",
            "currency": "CNY",
        },
    )
    assert status == 404, body


async def test_replayed_stale_tampered_and_unsigned_requests_are_refused(
    partner: Partner, http: aiohttp.ClientSession
) -> None:
    payload = {"account": partner.node.accounts["alice.CNY"]}
    assert (await partner.call("account.balance", payload, nonce="nonce-0001"))[0] == 200
    status, body = await partner.call("account.balance", payload, nonce="nonce-0001")
    assert (status, body["code"]) == (401, "REQUEST_REPLAYED")
    for skew in (-301, 301):
        status, body = await partner.call(
            "account.balance", payload, timestamp=int(time.time()) + skew
        )
        assert (status, body["code"]) == (401, "REQUEST_EXPIRED")
    tampered = orjson.dumps({"account": partner.node.accounts["bob.CNY"]})
    status, body = await partner.call("account.balance", payload, sent_body=tampered)
    assert (status, body["code"]) == (401, "SIGNATURE_INVALID")
    status, body = await partner.call("account.balance", payload, client_id="someone-else")
    assert (status, body["code"]) == (401, "SIGNATURE_INVALID")
    async with http.post(
        partner.node.url("/open/v1/services/account.balance"),
        json=payload,
        headers={"Authorization": f"Bearer {partner.token}", "X-Client-Id": DEMO_PARTNER_ID},
    ) as answer:
        assert (await answer.json())["code"] == "SIGNATURE_INVALID"
    # A customer's own token is no partner token.
    _, tokens = await login(http, partner.node, "alice")
    customer = Partner(http, partner.node, str(tokens["access_token"]))
    status, body = await customer.call("account.balance", payload)
    assert (status, body["code"]) == (401, "TOKEN_INVALID")


async def test_after_revocation_everything_is_refused(
    partner: Partner, http: aiohttp.ClientSession
) -> None:
    _, tokens = await login(http, partner.node, "alice")
    alice = str(tokens["access_token"])
    status, listed = await call(http, partner.node, "consent.list", {}, alice)
    assert status == 200, listed
    assert [c["consent"] for c in listed["data"]["consents"]] == [str(DEMO_CONSENT_ID)]  # type: ignore[index]

    status, revoked = await call(
        http,
        partner.node,
        "consent.revoke",
        {"consent": str(DEMO_CONSENT_ID)},
        alice,
        **{"Idempotency-Key": "revoke-1"},
    )
    assert status == 200, revoked
    assert revoked["data"]["status"] == "revoked"  # type: ignore[index]
    for service, payload in (
        ("account.balance", {"account": partner.node.accounts["alice.CNY"]}),
        ("account.list", {}),
        ("account.statement", {"account": partner.node.accounts["alice.CNY"]}),
    ):
        status, body = await partner.call(service, payload)
        assert (status, body["code"]) == (403, "CONSENT_INVALID"), service

    # A new consent, for her USD account and balances only, opens exactly that.
    status, granted = await call(
        http,
        partner.node,
        "consent.grant",
        {
            "client_id": DEMO_PARTNER_ID,
            "accounts": [partner.node.accounts["alice.USD"]],
            "scopes": ["accounts:read"],
            "days": 7,
        },
        alice,
        **{"Idempotency-Key": "grant-1"},
    )
    assert status == 200, granted
    consent = str(granted["data"]["consent"])  # type: ignore[index]
    usd = {"account": partner.node.accounts["alice.USD"]}
    assert (await partner.call("account.balance", usd, consent=consent))[0] == 200
    status, body = await partner.call("account.statement", usd, consent=consent)
    assert (status, body["code"]) == (403, "FORBIDDEN")  # statements:read not consented
    # alice cannot grant access to bob's account.
    status, body = await call(
        http,
        partner.node,
        "consent.grant",
        {
            "client_id": DEMO_PARTNER_ID,
            "accounts": [partner.node.accounts["bob.CNY"]],
            "scopes": ["accounts:read"],
        },
        alice,
        **{"Idempotency-Key": "grant-2"},
    )
    assert (status, body["code"]) == (403, "FORBIDDEN")


async def test_an_app_is_refused_outside_its_allowed_networks(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    runtime = Runtime.build(secure_node.settings)
    try:
        secret = await register_app(
            runtime.security,
            client_id="offshore-app",
            name="Offshore",
            scopes=["accounts:read"],
            networks=["10.0.0.0/8"],
        )
    finally:
        await runtime.close()
    status, body = await app_token(http, secure_node, "offshore-app", secret)
    assert (status, body["error"]) == (403, "unauthorized_client")


@pytest.fixture(params=["memory", "redis"])
async def quota_node(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[SecureNode]:
    """The demo bank allowing each partner app 3 requests a minute, counted in this node or
    in Redis."""
    settings = secure_settings(database_url, tmp_path)
    settings = settings.model_copy(
        update={"partner": settings.partner.model_copy(update={"requests_per_minute": 3})}
    )
    if request.param == "memory":
        async with secure_bank(settings) as node:
            yield node
        return
    async with redis_keyspace() as (url, prefix):
        shared = settings.model_copy(
            update={"redis": settings.redis.model_copy(update={"url": url, "prefix": prefix})}
        )
        async with secure_bank(shared) as node:
            yield node


async def test_each_app_has_a_request_quota(
    quota_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    status, body = await app_token(http, quota_node)
    assert status == 200, body
    partner = Partner(http, quota_node, str(body["access_token"]))
    number = quota_node.accounts["alice.CNY"]
    for _ in range(3):
        status, body = await partner.call("account.balance", {"account": number})
        assert status == 200, body
    path = "/open/v1/services/account.balance"
    stamp, nonce, payload = (
        str(int(time.time())),
        uuid.uuid4().hex,
        orjson.dumps({"account": number}),
    )
    async with http.post(
        quota_node.url(path),
        data=payload,
        headers={
            "Authorization": f"Bearer {partner.token}",
            "Content-Type": "application/json",
            "X-Client-Id": DEMO_PARTNER_ID,
            "X-Timestamp": stamp,
            "X-Nonce": nonce,
            "X-Signature": sign(DEMO_PARTNER_SECRET, "POST", path, "", stamp, nonce, payload),
            "X-Consent-Id": str(DEMO_CONSENT_ID),
        },
    ) as answer:
        assert answer.status == 429
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
        refused = await answer.json()
    assert refused["code"] == "RATE_LIMITED"
    assert refused["details"]["retry_after"] == int(answer.headers["Retry-After"])
    # A refused call does not run: no journal row is written for it, no money could move.
    # Calls that are not the app's (a wrong token) do not spend its quota either.
    stranger = Partner(http, quota_node, "not-a-token")
    status, body = await stranger.call("account.balance", {"account": number})
    assert (status, body["code"]) == (401, "TOKEN_INVALID")


async def test_the_partner_openapi_document_lists_exactly_what_partners_can_call(
    secure_node: SecureNode, http: aiohttp.ClientSession
) -> None:
    async with http.get(secure_node.url("/open/v1/openapi.json")) as answer:
        assert answer.status == 200
        document = await answer.json()
    validate(document)  # a valid OpenAPI 3.1 document
    runtime = Runtime.build(secure_node.settings)
    try:
        released = {
            f"/open/v1/services/{service.id}"
            for service in runtime.catalog.published()
            if "partner" in service.definition.channels
        }
    finally:
        await runtime.close()
    assert set(document["paths"]) == released
    assert "/open/v1/services/account.balance" in released
    assert "/open/v1/services/transfer.internal" not in released
    balance = document["paths"]["/open/v1/services/account.balance"]["post"]
    headers = {p["name"]: p["required"] for p in balance["parameters"]}
    assert {"X-Client-Id", "X-Timestamp", "X-Nonce", "X-Signature"} <= {
        name for name, required in headers.items() if required
    }
    assert "X-Consent-Id" in headers
    assert {"200", "401", "403", "429"} <= set(balance["responses"])
    flows = document["components"]["securitySchemes"]["clientCredentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/oauth/token"
