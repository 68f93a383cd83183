"""``channelhub atm``, the terminal simulator, against a node's ISO 8583 channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.channels_iso8583.conftest import ALICE_PAN, AtmNode
from tests.support.processes import channelhub, node_env

pytestmark = pytest.mark.asyncio


async def test_the_simulator_withdraws_and_reverses(atm: AtmNode, tmp_path: Path) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    env = node_env(atm.settings.database.url or "", tmp_path)
    where = ("--host", atm.host, "--port", str(atm.port))

    async def run(*args: str) -> tuple[int, str, str]:
        done = await asyncio.to_thread(channelhub, "atm", *args, *where, env=env)
        return done.returncode, done.stdout, done.stderr

    code, out, err = await run("withdraw", "--amount", "300.00")
    assert code == 0, out + err
    assert "for the demo bank only" in err
    assert "00" in out
    assert await atm.bank.balance(account) == before - 30_000
    request = next(line for line in out.splitlines() if "STAN" in line).split()
    stan, when = request[request.index("STAN") + 1], request[request.index("time") + 1]
    code, out, _ = await run(
        "reverse", "--original-stan", stan, "--original-time", when, "--amount", "300.00"
    )
    assert code == 0, out
    assert await atm.bank.balance(account) == before
    code, out, _ = await run("balance", "--pin", "0000")
    assert code == 1
    assert "55" in out
    code, _, err = await run("dance")
    assert code == 2
