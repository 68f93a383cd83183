"""A node with the demo bank, its terminals and the ATM and POS channel on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from channelhub.cau.service import pan_fingerprint
from channelhub.channels.iso8583.terminal import Terminal
from channelhub.config import Settings
from channelhub.demo.identities import DEMO_MAC_KEY, DEMO_PIN_KEY, seed_terminals
from channelhub.runtime import Runtime, data_key
from tests.conftest import serving
from tests.security.conftest import secure_settings
from tests.support.bank import Bank, open_bank

ALICE_PAN = "6234560000000016"
BOB_PAN = "6234560000000024"
PIN = "1234"


@dataclass
class AtmNode:
    """The served node, a runtime on its database to check balances, and its address."""

    host: str
    port: int
    bank: Bank
    settings: Settings
    #: The served node's own runtime (its caches: rules, limits), when the test serves it.
    served: Runtime | None = None

    def terminal(self, terminal_id: str = "ATM00001", **keys: Any) -> Terminal:
        """Return a terminal with the demo keys (or the given ones), not yet connected."""
        return Terminal(
            terminal_id,
            pin_key=keys.get("pin_key", bytes.fromhex(DEMO_PIN_KEY)),
            mac_key=keys.get("mac_key", bytes.fromhex(DEMO_MAC_KEY)),
            merchant="DEMOMERCHANT001" if terminal_id.startswith("POS") else None,
        )

    @asynccontextmanager
    async def connected(self, terminal_id: str = "ATM00001") -> AsyncIterator[Terminal]:
        """Yield a terminal connected to the node."""
        device = self.terminal(terminal_id)
        await device.connect(self.host, self.port)
        try:
            yield device
        finally:
            await device.close()

    async def sql(self, statement: str, **params: Any) -> Any:
        """Run one statement on the node's database and commit."""
        async with self.bank.runtime.sessions() as session, session.begin():
            result: Any = await session.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    async def held(self, account: str) -> int:
        """Return what the ledger holds on an account, in minor units."""
        rows = await self.sql("SELECT held_minor FROM ledger_accounts WHERE code = :a", a=account)
        return int(rows[0][0])

    def pan_hash(self, pan: str) -> str:
        """Return the keyed hash a card number is stored as."""
        return pan_fingerprint(data_key(self.settings), pan)

    async def account_of(self, pan: str) -> str:
        """Return the number of the account a card draws on."""
        rows = await self.sql(
            "SELECT a.number FROM cards c JOIN accounts a ON a.id = c.account_id "
            "WHERE c.pan_hash = :hash",
            hash=self.pan_hash(pan),
        )
        return str(rows[0][0])

    async def card(self, pan: str, changes: str = "") -> tuple[Any, ...]:
        """Apply ``changes`` (an SQL SET list) to a card, then return its status and wrong
        PIN count."""
        if changes:
            await self.sql(
                f"UPDATE cards SET {changes} WHERE pan_hash = :hash", hash=self.pan_hash(pan)
            )
        rows = await self.sql(
            "SELECT status, pin_failures FROM cards WHERE pan_hash = :hash", hash=self.pan_hash(pan)
        )
        return tuple(rows[0])


def atm_settings(database_url: str, data_dir: Path, **iso8583: Any) -> Settings:
    """Return test node settings with the ISO 8583 channel on a free loopback port."""
    settings = secure_settings(database_url, data_dir)
    section = settings.iso8583.model_copy(update={"port": 0, **iso8583})
    return settings.model_copy(update={"iso8583": section})


@asynccontextmanager
async def atm_node(settings: Settings) -> AsyncIterator[AtmNode]:
    """Seed the demo bank and its terminals, serve the node, and yield it."""
    runtime = Runtime.build(settings)
    try:
        bank = await open_bank(runtime)
        await runtime.security.start()
        await seed_terminals(runtime.sessions, runtime.security)
        node = serving(settings)
        async with node:
            app: Any = node.server.config.app
            host, port = app.state.iso8583.address
            yield AtmNode(host, port, bank, settings, app.state.runtime)
    finally:
        await runtime.close()


@pytest.fixture
async def atm(database_url: str, tmp_path: Path) -> AsyncIterator[AtmNode]:
    """The demo bank served with its ATM and POS channel."""
    async with atm_node(atm_settings(database_url, tmp_path)) as node:
        yield node
