"""``channelhub simulate switch``, started as an operator would, answered over a real socket."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from channelhub.connectors.base import BackendTimeout
from channelhub.connectors.iso8583 import Iso8583Connector
from tests.connectors.iso8583.conftest import ZHANG, withdrawal
from tests.support.processes import start_simulator


def start_switch(*flags: str) -> tuple[subprocess.Popen[str], str, int, list[str]]:
    """Start ``channelhub simulate switch --port 0 FLAGS`` (``start_simulator``)."""
    return start_simulator("switch", *flags)


async def test_the_simulated_switch_prints_its_cards_and_answers(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_switch, "--ceiling", "100.00")
    processes.append(process)
    printed = "".join(lines)
    assert ZHANG in printed
    assert "50000.00" in printed
    assert "100.00 CNY" in printed
    connector = Iso8583Connector("switch", host, port)
    try:
        approved = await connector.call("withdraw", withdrawal(ZHANG, 10_000), timeout=10)
        refused = await connector.call("withdraw", withdrawal(ZHANG, 10_001), timeout=10)
    finally:
        await connector.close()
    assert (approved["39"], refused["39"]) == ("00", "51")


async def test_the_drop_flag_leaves_a_withdrawal_unanswered(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_switch, "--drop")
    processes.append(process)
    assert "drop=True" in "".join(lines)
    connector = Iso8583Connector("switch", host, port)
    try:
        assert (await connector.call("echo", {}, timeout=10))["39"] == "00"
        with pytest.raises(BackendTimeout) as caught:
            await connector.call("withdraw", withdrawal(ZHANG, 100), timeout=4)
    finally:
        await connector.close()
    assert caught.value.in_doubt
    assert caught.value.details["reversal"] == "acknowledged"
