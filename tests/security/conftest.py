"""A node with the demo bank and its identities, serving HTTP on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest

from channelhub.config import Settings
from channelhub.demo.identities import DEMO_TOTP_SECRETS, seed_identities, seed_partner
from channelhub.kit.clock import utc_now
from channelhub.runtime import Runtime
from tests.conftest import make_settings, serving
from tests.support.bank import open_bank

#: argon2id at OWASP's minimum cost keeps the suite quick; the production default is higher.
FAST_SECURITY = {
    "argon2_memory_kib": 19_456,
    "argon2_time_cost": 2,
    "argon2_parallelism": 1,
    "master_key": "test-master-key-" + "k" * 32,
    "max_failed_logins": 5,
    "sync_seconds": 0.2,
}


@dataclass
class SecureNode:
    """A served node and what a test needs to talk to it."""

    base: str
    settings: Settings
    accounts: dict[str, str]
    #: The serving node's own runtime (its engine's clock may be set), where the test has it.
    runtime: Runtime | None = None

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path``."""
        return self.base + path


class _TOTP(pyotp.TOTP):
    min_secret_length_bits = 80  # the demo's 16-character secrets, as an authenticator takes


def otp(username: str, *, offset_steps: int = 0) -> str:
    """Return the current TOTP code of a demo identity (optionally a step away)."""
    totp = _TOTP(DEMO_TOTP_SECRETS[username])
    return totp.at(utc_now().timestamp() + 30 * offset_steps)


def secure_settings(database_url: str, data_dir: Path, **security: object) -> Settings:
    """Return test node settings with fast argon2 and a fixed master key."""
    return make_settings(
        database_url,
        data_dir,
        security={**FAST_SECURITY, **security},
        log={"level": "INFO"},
    )


@pytest.fixture
async def secure_node(database_url: str, tmp_path: Path) -> AsyncIterator[SecureNode]:
    """The demo bank with passwords and TOTP, served over HTTP."""
    async with secure_bank(secure_settings(database_url, tmp_path)) as node:
        yield node


@asynccontextmanager
async def secure_bank(settings: Settings) -> AsyncIterator[SecureNode]:
    """Seed the demo bank with its identities and partner app, and serve it over HTTP."""
    runtime = Runtime.build(settings)
    try:
        bank = await open_bank(runtime)
        await seed_identities(runtime.sessions, runtime.security, now=utc_now())
        await runtime.security.start()
        await seed_partner(runtime.sessions, runtime.security, now=utc_now())
    finally:
        await runtime.close()
    node = serving(settings)
    async with node as base:
        app: Any = node.server.config.app
        yield SecureNode(base, settings, dict(bank.accounts), app.state.runtime)


async def login(
    http: aiohttp.ClientSession,
    node: SecureNode,
    username: str,
    *,
    password: str | None = None,
    device: str | None = None,
    channel: str = "mobile",
) -> tuple[int, dict[str, object]]:
    """POST a login; return the status and the body."""
    body = {
        "username": username,
        "password": password if password is not None else f"{username}-Demo-2026",
        "device_id": device or f"{username}-phone",
        "channel": channel,
    }
    async with http.post(node.url("/api/v1/auth/login"), json=body) as answer:
        return answer.status, await answer.json()


async def mfa_login(
    http: aiohttp.ClientSession, node: SecureNode, username: str, device: str, **kwargs: str
) -> dict[str, object]:
    """Log in from a new device with the second factor; return the token answer."""
    status, body = await login(http, node, username, device=device, **kwargs)
    assert status == 200, body
    assert body.get("mfa_required") is True, body
    async with http.post(
        node.url("/api/v1/auth/mfa"), json={"mfa_token": body["mfa_token"], "otp": otp(username)}
    ) as answer:
        tokens = await answer.json()
    assert answer.status == 200, tokens
    return dict(tokens)


async def call(
    http: aiohttp.ClientSession,
    node: SecureNode,
    service: str,
    payload: dict[str, object],
    token: str | None,
    **headers: str,
) -> tuple[int, dict[str, object]]:
    """Call a service with a bearer token; return the status and the envelope."""
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with http.post(
        node.url(f"/api/v1/services/{service}"), json=payload, headers=sent
    ) as answer:
        return answer.status, await answer.json()
