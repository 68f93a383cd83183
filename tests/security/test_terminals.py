"""Terminals: registered with keys sealed under the master key, never stored in clear; the
checks the ISO 8583 channel relies on work from the stored row; the CLI prints keys once."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from channelhub.config import Settings
from channelhub.runtime import Runtime
from channelhub.security import terminals
from channelhub.security.ssm import retail_mac
from tests.security.conftest import secure_settings
from tests.support.processes import channelhub, node_env

pytestmark = pytest.mark.asyncio


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return secure_settings(database_url, tmp_path)


async def test_keys_are_sealed_and_usable(settings: Settings) -> None:
    runtime = Runtime.build(settings)
    try:
        keys = await terminals.register_terminal(
            runtime.security, terminal_id="ATM00042", kind="atm", location="Test lobby"
        )
        async with runtime.sessions() as session:
            row = await terminals.terminal(session, "ATM00042")
            stored = repr((await session.execute(text("SELECT * FROM terminals"))).all())
        assert row is not None
        assert keys.pin_key not in stored.upper()
        assert keys.mac_key not in stored.upper()
        assert (row.pin_key_check, row.mac_key_check) == (keys.pin_key_check, keys.mac_key_check)
        data = b"0200 some packed message"
        mac = retail_mac(bytes.fromhex(keys.mac_key), data)
        assert terminals.verify_mac(runtime.security, row, data, mac)
        assert not terminals.verify_mac(runtime.security, row, data + b"!", mac)
        with pytest.raises(ValueError, match="8 letters"):
            await terminals.register_terminal(
                runtime.security, terminal_id="ATM 1", kind="atm", location="x"
            )
        with pytest.raises(ValueError, match="atm or a pos"):
            await terminals.register_terminal(
                runtime.security, terminal_id="KIOSK001", kind="kiosk", location="x"
            )
    finally:
        await runtime.close()


async def test_the_cli_registers_a_terminal_once(settings: Settings, tmp_path: Path) -> None:
    env = node_env(settings.database.url or "", tmp_path, CHANNELHUB_SECURITY_MASTER_KEY="c" * 40)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(channelhub, *args, env=env)

    first = await run("terminal", "register", "POS00042", "--kind", "pos", "--location", "Shop")
    assert first.returncode == 0, first.stderr
    assert "PIN key:" in first.stdout
    assert "check value" in first.stdout
    again = await run("terminal", "register", "POS00042", "--kind", "pos", "--location", "Shop")
    assert again.returncode == 2
    assert "already registered" in again.stderr
    bad = await run("terminal", "register", "x';--", "--kind", "pos", "--location", "Shop")
    assert bad.returncode == 2
    assert "8 letters" in bad.stderr
