"""What the tests of services on external back ends share: a demo bank at 14:30 bank time
with a daily outgoing limit, the node's recovery worker a minute ahead, and ways to read the
platform's side of the books."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from channelhub.connectors.simulators.clearing import ClearingSimulator
from channelhub.kernel import RecoveryWorker, journal
from channelhub.runtime import Runtime
from tests.limits.conftest import set_bank_limit
from tests.support.bank import Bank, open_bank
from tests.support.clock import at_bank_time
from tests.support.processes import stop_all


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts (simulators on the command line), stopped at its end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    stop_all(started)


@pytest.fixture
async def clearing() -> AsyncIterator[ClearingSimulator]:
    """The simulated clearing house on a free loopback port."""
    simulator = ClearingSimulator()
    await simulator.start()
    yield simulator
    await simulator.close()


async def open_limited_bank(runtime: Runtime) -> Bank:
    """Seed the demo bank, with a bank-wide daily CNY limit on outgoing transfers, and pin the
    node's clock to 14:30 in the bank's time zone (the default night rule stays quiet)."""
    at_bank_time(runtime, 14)
    bank = await open_bank(runtime)
    await set_bank_limit(
        runtime,
        level="global",
        scope="transfer.outgoing",
        currency="CNY",
        period="daily",
        amount="50000.00",
    )
    return bank


def recovery(runtime: Runtime) -> RecoveryWorker:
    """The node's recovery worker, a minute ahead of the node (every lease has run out)."""
    later = runtime.engine.clock() + dt.timedelta(minutes=1)
    return RecoveryWorker(
        sessions=runtime.sessions,
        catalog=lambda: runtime.catalog,
        registry=runtime.engine.runner.registry,
        settings=runtime.engine.settings,
        services=runtime.engine.services,
        clock=lambda: later,
    )


async def journal_row(bank: Bank, txn_id: Any) -> Any:
    """Return the transaction's journal row (it must exist)."""
    async with bank.runtime.sessions() as session:
        row = await journal.get(session, txn_id)
    assert row is not None
    return row


async def limit_used(bank: Bank) -> str:
    """What alice has used today of her outgoing-transfer limit."""
    listed = await bank.call("alice", "limit.list", {})
    used = {str(e["used"]) for e in listed.data["limits"] if e["currency"] == "CNY"}
    assert len(used) == 1, listed.data
    return used.pop()
