"""The demo bank in a test's database, and short ways to call its services."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text

from channelhub.cau.service import customer_principal
from channelhub.demo.bank import SeedContext, seed_bank, seed_customers
from channelhub.kernel import TransactionRequest, TransactionResult
from channelhub.kernel.model import AuthLevel, Principal
from channelhub.kit.clock import utc_now
from channelhub.ledger import service as ledger
from channelhub.models import Posting
from channelhub.runtime import Runtime, data_key

__all__ = ["Bank", "open_bank"]


@dataclass
class Bank:
    """A seeded demo bank: alice's and bob's principals, accounts and cards."""

    runtime: Runtime
    principals: dict[str, Principal] = field(default_factory=dict)
    #: "alice.CNY", "alice.USD", "bob.CNY" ... -> account number
    accounts: dict[str, str] = field(default_factory=dict)
    #: "alice", "bob" -> card id
    cards: dict[str, str] = field(default_factory=dict)

    async def call(
        self,
        who: str,
        service: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        channel: str = "mobile",
    ) -> TransactionResult:
        """Run ``service`` as the named customer user through the kernel."""
        request = TransactionRequest(
            service_id=service,
            channel=channel,
            principal=self.principals[who],
            payload=dict(payload or {}),
            idempotency_key=key or f"test-{uuid.uuid4()}",
        )
        return await self.runtime.engine.execute(request)

    async def balance(self, number: str) -> int:
        """Return an account's ledger balance in minor units."""
        async with self.runtime.sessions() as session:
            return (await ledger.balances(session, [number]))[number].ledger_minor

    async def postings(self) -> int:
        """Return how many postings the ledger holds."""
        async with self.runtime.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Posting)) or 0)

    async def verify(self) -> list[str]:
        """Return every broken ledger invariant."""
        async with self.runtime.sessions() as session:
            return await ledger.verify(session)


async def open_bank(runtime: Runtime, *, generated: int = 0) -> Bank:
    """Seed the demo bank into the runtime's database and return its handles."""
    ctx = SeedContext(utc_now(), runtime.settings.bank.zone, data_key(runtime.settings))
    await seed_bank(runtime.sessions, ctx)
    if generated:
        await seed_customers(runtime.sessions, ctx, count=generated)
    bank = Bank(runtime)
    async with runtime.sessions() as session:
        for who in ("alice", "bob", "acme.op1"):
            bank.principals[who] = await customer_principal(
                session, who, auth_level=AuthLevel.PASSWORD
            )
        rows = await session.execute(
            text(
                "SELECT u.username, a.number, a.currency FROM accounts a "
                "JOIN customer_users u ON u.customer_id = a.customer_id "
                "WHERE u.username IN ('alice', 'bob')"
            )
        )
        for username, number, currency in rows:
            bank.accounts[f"{username}.{currency}"] = number
        rows = await session.execute(
            text(
                "SELECT u.username, c.id FROM cards c "
                "JOIN customer_users u ON u.customer_id = c.customer_id "
                "WHERE u.username IN ('alice', 'bob')"
            )
        )
        for username, card_id in rows:
            bank.cards[username] = str(uuid.UUID(str(card_id)))
    return bank
