"""A served demo bank with its staff, and short ways to work its teller desk."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.demo.catalog import DEMO_CUSTOMERS
from channelhub.kit.clock import business_date
from channelhub.kit.db import create_engine
from channelhub.ledger import service as ledger
from channelhub.runtime import Runtime
from tests.security.conftest import SecureNode, otp, secure_bank, secure_settings
from tests.support.clock import at_bank_time

__all__ = ["ALICE_CARD", "BOB_CARD", "Desk", "alice", "bob", "desk_token"]

#: The demo cards, as the README prints them (every demo PIN is 1234).
ALICE_CARD, BOB_CARD = "6234560000000016", "6234560000000024"


def _document(username: str) -> dict[str, Any]:
    spec = next(c for c in DEMO_CUSTOMERS if c.username == username)
    return {"id_document": {"type": spec.id_type, "number": spec.id_number}}


def alice() -> dict[str, Any]:
    """Alice identified by her resident id."""
    return _document("alice")


def bob() -> dict[str, Any]:
    """Bob identified by his resident id."""
    return _document("bob")


async def desk_token(
    http: aiohttp.ClientSession, node: SecureNode, username: str, *, channel: str = "teller"
) -> str:
    """Log a demo staff member in at the desk (password, then TOTP); return the access token."""
    async with http.post(
        node.url("/staff/v1/auth/login"),
        json={"username": username, "password": f"{username}-Demo-2026", "channel": channel},
    ) as answer:
        body = await answer.json()
    assert answer.status == 200, body
    async with http.post(
        node.url("/staff/v1/auth/mfa"), json={"mfa_token": body["mfa_token"], "otp": otp(username)}
    ) as answer:
        tokens = await answer.json()
    assert answer.status == 200, tokens
    return str(tokens["access_token"])


class Desk:
    """A served node's teller desk, as a test drives it over HTTP."""

    def __init__(self, node: SecureNode, http: aiohttp.ClientSession) -> None:
        self.node, self.http = node, http
        self.accounts = node.accounts
        self._keys = 0

    @property
    def runtime(self) -> Runtime:
        """The serving node's runtime."""
        assert self.node.runtime is not None, "the node's runtime is known (secure_bank)"
        return self.node.runtime

    def now(self) -> dt.datetime:
        """The serving node's engine clock: what the desk's business day is read from."""
        return self.runtime.engine.clock()

    def today(self) -> str:
        """The desk's business date (the engine clock's day in the bank's time zone)."""
        return business_date(self.now(), self.runtime.engine.settings.time_zone).isoformat()

    async def call(
        self,
        token: str | None,
        service: str,
        payload: dict[str, Any] | None = None,
        *,
        customer: dict[str, Any] | None = None,
        key: str | None = "auto",
    ) -> tuple[int, dict[str, Any]]:
        """POST a desk request; return the status and the envelope."""
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key == "auto":
            self._keys += 1
            key = f"desk-{service}-{self._keys}"
        if key is not None:
            headers["Idempotency-Key"] = key
        body: dict[str, Any] = {"input": payload or {}}
        if customer is not None:
            body["customer"] = customer
        return await self.raw(f"/teller/v1/services/{service}", body, headers)

    async def raw(
        self, path: str, body: object, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST any JSON body; return the status and the answer."""
        async with self.http.post(self.node.url(path), json=body, headers=headers) as answer:
            return answer.status, await answer.json()

    async def get(self, path: str, token: str) -> tuple[int, dict[str, Any]]:
        """GET with a staff token; return the status and the answer."""
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.get(self.node.url(path), headers=headers) as answer:
            return answer.status, await answer.json()

    async def sql(self, query: str, **params: Any) -> list[Any]:
        """Run one read-only query against the node's database (a UUID value binds as one)."""
        statement = text(query).bindparams(
            *(bindparam(name, type_=Uuid()) for name, value in params.items()
              if isinstance(value, uuid.UUID))
        )  # fmt: skip
        engine = create_engine(self.node.settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(statement, params)).all())
        finally:
            await engine.dispose()

    async def cash(self, branch: str, currency: str = "CNY") -> int:
        """Return a branch's cash account's balance (minor units; the bank's cash is debit)."""
        code = ledger.gl_code("cash", currency, branch)
        rows = await self.sql(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_postings WHERE account_code = :c",
            c=code,
        )
        return int(rows[0][0])

    async def balance(self, number: str) -> tuple[int, int]:
        """Return an account's ledger balance and held amount (minor units)."""
        rows = await self.sql(
            "SELECT balance_minor, held_minor FROM ledger_accounts WHERE code = :c", c=number
        )
        return int(rows[0][0]), int(rows[0][1])

    async def ledger_problems(self) -> list[str]:
        """Return every broken ledger invariant (none in a healthy ledger)."""
        engine = create_engine(self.node.settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn, AsyncSession(bind=conn) as session:
                return await ledger.verify(session)
        finally:
            await engine.dispose()


@pytest.fixture
async def desk(
    database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[Desk]:
    """The demo bank with its staff, served over HTTP, and its desk, at 14:30 bank time.

    The desk's business day (a cash position's, an approval's end) is read from the node's
    engine clock: pinned to the afternoon, a test never straddles the bank's midnight."""
    async with secure_bank(secure_settings(database_url, tmp_path)) as node:
        assert node.runtime is not None
        at_bank_time(node.runtime, 14)
        yield Desk(node, http)
