"""``channelhub simulate core``, started as an operator would, answered over a real socket."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from channelhub.connectors.fixed import FixedClient, FixedGarbage
from channelhub.connectors.simulators.core import CORE_FRAMING
from tests.connectors.fixed.conftest import ZHANG, ask
from tests.support.processes import start_simulator


def start_core(*flags: str) -> tuple[subprocess.Popen[str], str, int, list[str]]:
    """Start ``channelhub simulate core --port 0 FLAGS`` (``start_simulator``)."""
    return start_simulator("core", *flags)


async def test_the_simulated_core_prints_its_accounts_and_answers(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_core)
    processes.append(process)
    printed = "".join(lines)
    assert ZHANG in printed
    assert "50000.00" in printed
    client = FixedClient(host, port, framing=CORE_FRAMING)
    try:
        answer = await ask(client, txn_code="BINQ", account=ZHANG)
    finally:
        await client.close()
    assert (answer["result"], answer["ledger_balance"]) == ("0000", 5_000_000)


async def test_the_garbage_flag_makes_it_answer_garbage(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_core, "--garbage")
    processes.append(process)
    assert "garbage=True" in "".join(lines)
    client = FixedClient(host, port, framing=CORE_FRAMING)
    try:
        with pytest.raises(FixedGarbage):
            await ask(client, txn_code="BINQ", account=ZHANG)
    finally:
        await client.close()
