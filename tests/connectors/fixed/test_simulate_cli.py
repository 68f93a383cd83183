"""``channelhub simulate core``, started as an operator would, answered over a real socket."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from channelhub.connectors.fixed import FixedClient, FixedGarbage
from channelhub.connectors.simulators.core import CORE_FRAMING
from tests.connectors.fixed.conftest import ZHANG, ask
from tests.support.processes import REPO

_ADDRESS = re.compile(r"listening on ([0-9.]+):([0-9]+)")


def start_core(*flags: str) -> tuple[subprocess.Popen[str], str, int, list[str]]:
    """Start ``channelhub simulate core --port 0 FLAGS``; return it, its address and what it
    printed up to its faults line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channelhub", "simulate", "core", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("faults:"):
            break
    found = next((_ADDRESS.search(line) for line in lines if _ADDRESS.search(line)), None)
    if found is None:
        process.kill()
        pytest.fail("the simulator did not print its address: " + "".join(lines))
    return process, found.group(1), int(found.group(2)), lines


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


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
