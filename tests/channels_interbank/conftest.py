"""The demo bank serving HTTP on a real socket, with its interbank participant registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from channelhub.demo.identities import seed_participant, seed_partner
from channelhub.kit.clock import utc_now
from channelhub.ledger import service as ledger
from channelhub.runtime import Runtime
from tests.channels_interbank.sender import SendingBank
from tests.conftest import serving
from tests.security.conftest import secure_settings
from tests.support.bank import Bank, open_bank

CLEARING_CNY = ledger.gl_code("clearing", "CNY")


@dataclass
class Interbank:
    """A served demo bank, a handle on its database, and the participant bank sending to it."""

    base: str
    bank: Bank
    sender: SendingBank

    def account(self, name: str) -> str:
        """Return a demo account number: ``alice.CNY``, ``bob.USD`` ..."""
        return self.bank.accounts[name]

    async def balances(self, *names: str) -> dict[str, int]:
        """Return the ledger balances (minor units) of named demo accounts and GL codes."""
        codes = [self.bank.accounts.get(name, name) for name in names]
        async with self.bank.runtime.sessions() as session:
            found = await ledger.balances(session, codes)
        return {name: found[code].ledger_minor for name, code in zip(names, codes, strict=True)}

    async def clearing(self, currency: str = "CNY") -> int:
        """Return the clearing GL account's balance: the sum of its postings."""
        code = ledger.gl_code("clearing", currency)
        async with self.bank.runtime.sessions() as session:
            total = await session.scalar(
                text(
                    "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_postings "
                    "WHERE account_code = :code"
                ),
                {"code": code},
            )
        return int(total or 0)

    async def set_status(self, name: str, status: str) -> None:
        """Put a demo account in ``status`` (what a teller's freeze or closure does)."""
        closed_on = utc_now().date() if status == "closed" else None
        async with self.bank.runtime.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE accounts SET status = :s, closed_on = :d WHERE number = :n"),
                {"s": status, "d": closed_on, "n": self.bank.accounts[name]},
            )


@pytest.fixture
async def interbank(database_url: str, tmp_path: Path) -> AsyncIterator[Interbank]:
    """The demo bank with its partner app and interbank participant, served over HTTP."""
    settings = secure_settings(database_url, tmp_path)
    runtime = Runtime.build(settings)
    try:
        bank = await open_bank(runtime)
        await runtime.security.start()
        await seed_partner(runtime.sessions, runtime.security, now=utc_now())
        assert await seed_participant(runtime.sessions, runtime.security)
        async with (
            serving(settings) as base,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        ):
            sender = SendingBank(http, base)
            await sender.log_in()
            yield Interbank(base, bank, sender)
    finally:
        await runtime.close()
