"""A reversal that arrives while its original is being recorded: the ATM timed out on its
0200 and sent the 0400 while the node was still committing the withdrawal. The reversal must
wait for that commit and then take the money back, never answer 00 over nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from channelhub.kernel import journal
from tests.channels_iso8583.conftest import ALICE_PAN, PIN, AtmNode

pytestmark = pytest.mark.asyncio


async def test_a_reversal_racing_the_originals_commit_reverses_it(
    atm: AtmNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    recorded, go = asyncio.Event(), asyncio.Event()
    real_record = journal.record

    async def late_commit(
        session: Any, values: dict[str, Any], event: dict[str, Any], kept: Any = ()
    ) -> bool:
        written = await real_record(session, values, event, kept)
        if values.get("service_id") == "cash.withdraw":
            recorded.set()
            await go.wait()  # the original's journal row is written; its commit comes late
        return written

    monkeypatch.setattr(journal, "record", late_commit)
    async with atm.connected() as first, atm.connected() as second:
        withdrawal = first.financial("withdraw", pan=ALICE_PAN, pin=PIN, amount_minor=20_000)
        original = asyncio.create_task(first.send(dict(withdrawal)))
        await asyncio.wait_for(recorded.wait(), 30)
        reversal = asyncio.create_task(second.send(second.reversal(withdrawal)))
        await asyncio.sleep(0.5)  # let the reversal reach the original's key and wait there
        go.set()
        assert (await original).code == "00"
        assert (await reversal).code == "00"
        assert (await second.send(second.reversal(withdrawal, repeat=True))).code == "00"
    assert await atm.bank.balance(account) == before
    rows = await atm.sql("SELECT status FROM transactions WHERE service_id = 'cash.withdraw'")
    assert [row[0] for row in rows] == ["reversed"]
    assert await atm.bank.verify() == []
