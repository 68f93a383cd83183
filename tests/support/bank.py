"""The demo bank in a test's database, and short ways to call its services."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyotp
from sqlalchemy import func, select, text

from channelhub.cau.service import customer_principal
from channelhub.demo.bank import SeedContext, seed_bank, seed_customers
from channelhub.demo.identities import DEMO_TOTP_SECRETS
from channelhub.kernel import TransactionRequest, TransactionResult
from channelhub.kernel.model import AuthLevel, Principal, StepUpProof
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
    #: The last TOTP step each user answered a step-up with (each code is good once).
    steps: dict[str, int] = field(default_factory=dict)

    async def call(
        self,
        who: str,
        service: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        channel: str = "mobile",
        confirm: bool = True,
        device: str | None = None,
    ) -> TransactionResult:
        """Run ``service`` as the named customer user through the kernel; with ``confirm``,
        answer a step-up challenge as the customer's authenticator app would."""
        request = TransactionRequest(
            service_id=service,
            channel=channel,
            principal=self.principals[who],
            payload=dict(payload or {}),
            idempotency_key=key or f"test-{uuid.uuid4()}",
            device_id=device,
        )
        result = await self.runtime.engine.execute(request)
        if confirm and result.code == "MFA_NOT_ENROLLED":
            await self.enrol(who)
            result = await self.runtime.engine.execute(request)
        if confirm and result.code == "STEP_UP_REQUIRED":
            proof = StepUpProof(str(result.details["challenge"]), self.next_code(who))
            result = await self.runtime.engine.execute(replace(request, step_up=proof))
        return result

    def transfer(
        self, amount: str, *, source: str = "alice.CNY", to: str = "bob.CNY"
    ) -> dict[str, Any]:
        """The payload of a ``transfer.internal`` in CNY between two named accounts."""
        return {
            "from_account": self.accounts[source],
            "to_account": self.accounts[to],
            "amount": amount,
            "currency": "CNY",
        }

    async def enrol(self, who: str) -> None:
        """Give a demo user its password and its demo TOTP secret."""
        security, now = self.runtime.security, utc_now()
        principal = self.principals[who]
        async with self.runtime.sessions() as session, session.begin():
            subject = uuid.UUID(str(principal.id))
            await security.set_password(
                session, "customer", subject, who, f"{who}-Demo-2026", enforce_rules=False, now=now
            )
            await security.set_totp_secret(
                session, "customer", subject, DEMO_TOTP_SECRETS[who], confirmed=True, now=now
            )

    def next_code(self, who: str) -> str:
        """Return a code of ``who``'s authenticator for a step not used yet (within the one
        step of drift the platform allows)."""
        current = int(utc_now().timestamp()) // 30
        step = max(current - 1, self.steps.get(who, current - 2) + 1)
        if step > current + 1:
            raise AssertionError(f"{who} used every code of this minute")
        self.steps[who] = step
        return _Totp(DEMO_TOTP_SECRETS[who]).generate_otp(step)

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


class _Totp(pyotp.TOTP):
    min_secret_length_bits = 80  # the demo's 16-character secrets


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
                "WHERE u.username IN ('alice', 'bob', 'acme.op1')"
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
