"""card.authorize routed to an external card switch by configuration, end to end: a POS
terminal's 0100 over the ISO 8583 channel, the kernel, the iso8583 connector, the simulated
switch; its reversal; and a switch that does not answer. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channelhub.channels.iso8583.expiry import release_expired_authorizations
from channelhub.connectors.settings import ConnectorSettings
from channelhub.connectors.simulators.switch import SwitchCard, SwitchSimulator
from channelhub.kit.clock import utc_now
from tests.channels_iso8583.conftest import BOB_PAN, PIN, AtmNode, atm_node, atm_settings

ON_SWITCH = 300_000  # what the switch lets bob's card spend: 3,000.00


@pytest.fixture
async def switch() -> AsyncIterator[SwitchSimulator]:
    simulator = SwitchSimulator({BOB_PAN: SwitchCard(BOB_PAN, "BOB", "156", ON_SWITCH)})
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.close()


@pytest.fixture
async def atm(database_url: str, tmp_path: Path, switch: SwitchSimulator) -> AsyncIterator[AtmNode]:
    host, port = switch.address
    backend = ConnectorSettings(
        kind="iso8583",
        host=host,
        port=port,
        timeout_ms=800,
        retries=0,
        keepalive_seconds=0,
        reversal_interval_ms=200,
    )
    settings = atm_settings(database_url, tmp_path).model_copy(
        update={"connectors": {"switch": backend}, "routes": {"card.authorize": "switch-authorize"}}
    )
    async with atm_node(settings) as node:
        yield node


async def test_the_switch_authorizes_and_the_reversal_reaches_it(
    atm: AtmNode, switch: SwitchSimulator
) -> None:
    account = await atm.account_of(BOB_PAN)
    ledger = await atm.bank.balance(account)
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=30_000)
        answer = await device.send(dict(authorization))
        assert (answer.fields["t"], answer.code) == ("0110", "00"), answer.fields
        # The switch holds the money: its available amount comes back, the ledger is untouched.
        assert switch.cards[BOB_PAN].available == ON_SWITCH - 30_000
        assert answer.balances["02"] == ("CNY", ON_SWITCH - 30_000)
        assert await atm.held(account) == 0
        assert await atm.bank.balance(account) == ledger
        reversal = await device.send(device.reversal(authorization))
        assert (reversal.fields["t"], reversal.code) == ("0410", "00")
    assert switch.cards[BOB_PAN].available == ON_SWITCH
    statuses = await atm.sql("SELECT service_id, status FROM transactions ORDER BY created_at")
    assert ("card.authorize", "reversed") in [tuple(row) for row in statuses]


async def test_a_decline_by_the_switch_comes_back_through_the_code_table(
    atm: AtmNode, switch: SwitchSimulator
) -> None:
    async with atm.connected("POS00001") as device:
        too_much = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=400_000)
        answer = await device.send(dict(too_much))
    assert answer.code == "51"  # the switch's 51, INSUFFICIENT_FUNDS, field 39 51 again
    assert switch.cards[BOB_PAN].available == ON_SWITCH


async def test_an_unanswered_authorization_is_reversed_on_the_switch_and_declined(
    atm: AtmNode, switch: SwitchSimulator
) -> None:
    await switch.set_faults(drop=True)  # applies the 0100, never answers it
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=20_000)
        answer = await device.send(dict(authorization))
    assert answer.code != "00"  # declined: the switch confirmed the reversal first
    assert switch.cards[BOB_PAN].available == ON_SWITCH  # nothing stays held on the switch
    rows = await atm.sql(
        "SELECT status, code, step_log FROM transactions WHERE service_id = 'card.authorize'"
    )
    assert [tuple(row)[:2] for row in rows] == [("failed", "BACKEND_TIMEOUT")]
    step_log = rows[0][2] if isinstance(rows[0][2], list) else json.loads(rows[0][2])
    calls = [entry for entry in step_log if entry.get("step") == "connector.call"]
    assert [entry.get("resolved") for entry in calls] == ["not_done"]
    # switch-reverse reached the switch by terminal and retrieval reference number.
    assert [record.status for record in switch.book.by_reference.values()] == ["reversed"]


async def test_an_authorization_nobody_completed_is_released_on_the_switch(
    atm: AtmNode, switch: SwitchSimulator
) -> None:
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=12_300)
        answer = await device.send(dict(authorization))
    assert answer.code == "00"
    assert switch.cards[BOB_PAN].available == ON_SWITCH - 12_300
    later = utc_now() + dt.timedelta(days=8)  # past authorization_hold_days (7)
    assert atm.served is not None
    released = await release_expired_authorizations(atm.served.engine, hold_days=7, now=later)
    assert released == 1
    assert switch.cards[BOB_PAN].available == ON_SWITCH  # the sweep's 0400 reached the switch


async def test_the_card_number_sent_to_the_switch_is_never_logged_or_stored(
    atm: AtmNode,
    switch: SwitchSimulator,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    async with atm.connected("POS00001") as device:
        authorization = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=5_000)
        assert (await device.send(dict(authorization))).code == "00"
        await switch.set_faults(drop=True)  # and one the switch never answers: errors logged
        unanswered = device.financial("authorize", pan=BOB_PAN, pin=PIN, amount_minor=6_000)
        assert (await device.send(dict(unanswered))).code != "00"
    assert [record.pan for record in switch.book.records.values() if record.pan] == [BOB_PAN] * 2
    logs = capfd.readouterr()
    written = logs.out + logs.err + caplog.text + repr([r.__dict__ for r in caplog.records])
    assert "backend_call" in written  # the node did log the unanswered call
    assert BOB_PAN not in written
    stored = await atm.sql("SELECT step_log, response, request_hash FROM transactions")
    assert BOB_PAN not in repr(stored)
