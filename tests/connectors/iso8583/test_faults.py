"""What the iso8583 connector does when the switch misbehaves: in-doubt requests reversed,
garbage refused, a dead switch reported at once and cut off by its circuit breaker."""

from __future__ import annotations

import asyncio

import pytest

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendTimeout,
    BackendUnavailable,
    as_step_error,
)
from channelhub.connectors.settings import BreakerSettings, ConnectorSettings
from channelhub.connectors.simulators.switch import SwitchSimulator
from channelhub.governance.registry import BackendRegistry
from channelhub.kernel.steps import OutcomeUnknown
from tests.connectors.iso8583.conftest import ZHANG, MakeConnector, eventually, withdrawal


async def test_an_unanswered_withdrawal_is_reversed_and_left_in_doubt(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector()
    await switch.set_faults(drop=True)
    async with asyncio.timeout(30):
        with pytest.raises(BackendTimeout) as caught:
            await connector.call("withdraw", withdrawal(ZHANG, 30_000), timeout=4)
    error = caught.value
    assert error.in_doubt
    assert error.code == "BACKEND_TIMEOUT"
    assert isinstance(as_step_error(error), OutcomeUnknown)
    assert error.details["reason"] == "timeout"
    assert error.details["reversal"] == "acknowledged"
    assert error.details["reversal_response_code"] == "00"

    # The switch applied the withdrawal, then its reversal (an 0400) put the money back.
    assert [mti for mti in switch.received if mti != "0800"] == ["0200", "0400"]
    reversal = connector.reversals[-1]
    assert (reversal.state, reversal.attempts) == ("acknowledged", 1)
    assert reversal.original_stan == error.details["stan"]
    record = switch.record("ATM00001", reversal.original_stan, reversal.original_time)
    assert record is not None
    assert (record.status, record.amount) == ("reversed", 30_000)
    assert switch.cards[ZHANG].available == 5_000_000


async def test_the_reversal_is_repeated_as_0420_until_answered(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(reversal_interval_seconds=0.2, reversal_attempts=50)
    # Silent: neither the withdrawal nor the first reversals are answered in time.
    await switch.set_faults(slow_ms=60_000)
    async with asyncio.timeout(30):
        with pytest.raises(BackendTimeout) as caught:
            await connector.call("withdraw", withdrawal(ZHANG, 10_000), timeout=1)
    assert caught.value.in_doubt
    assert caught.value.details["reversal"] == "pending"
    reversal = connector.reversals[-1]
    await eventually(lambda: "0420" in switch.received)
    await switch.set_faults(slow_ms=0)
    async with asyncio.timeout(30):
        await reversal.settled.wait()
    assert reversal.state == "acknowledged"
    assert reversal.response_code == "00"
    assert reversal.attempts >= 2
    assert switch.received.count("0400") == 1
    assert switch.cards[ZHANG].available == 5_000_000
    record = switch.record("ATM00001", reversal.original_stan, reversal.original_time)
    assert record is not None
    assert record.status == "reversed"


async def test_reversals_are_bounded(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(reversal_interval_seconds=0.05, reversal_attempts=3)
    await switch.set_faults(slow_ms=60_000)
    with pytest.raises(BackendTimeout):
        await connector.call("withdraw", withdrawal(ZHANG, 10_000), timeout=0.5)
    reversal = connector.reversals[-1]
    async with asyncio.timeout(30):
        await reversal.settled.wait()
    assert (reversal.state, reversal.attempts) == ("abandoned", 3)
    assert [switch.received.count(mti) for mti in ("0400", "0420")] == [1, 2]


async def test_an_unanswered_balance_inquiry_is_not_in_doubt_nor_reversed(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector()
    await switch.set_faults(drop=True)
    with pytest.raises(BackendTimeout) as caught:
        await connector.call("balance", {"2": ZHANG}, timeout=0.3)
    assert not caught.value.in_doubt
    assert "reversal" not in caught.value.details
    assert not connector.reversals


async def test_garbage_is_a_bad_response(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(reversal_interval_seconds=0.05, reversal_attempts=2)
    await switch.set_faults(garbage=True)
    with pytest.raises(BackendBadResponse) as caught:
        await connector.call("balance", {"2": ZHANG}, timeout=5)
    assert caught.value.code == "BACKEND_BAD_RESPONSE"
    assert not caught.value.in_doubt
    with pytest.raises(BackendBadResponse) as caught:
        await connector.call("withdraw", withdrawal(ZHANG, 100), timeout=2)
    # The switch applied it and answered nonsense: in doubt, and reversed.
    assert caught.value.in_doubt
    assert caught.value.details["reason"] == "garbage"
    assert ZHANG not in str(caught.value.details)
    assert ZHANG not in caught.value.message
    await switch.set_faults(garbage=False)
    assert (await connector.call("echo", {}, timeout=5))["39"] == "00"


async def test_a_switch_that_is_down_is_reported_at_once(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    await switch.set_faults(down=True)
    connector = make_connector()
    async with asyncio.timeout(5):  # far below the call's own timeout
        with pytest.raises(BackendUnavailable) as caught:
            await connector.call("withdraw", withdrawal(ZHANG, 100), timeout=60)
    assert not caught.value.in_doubt
    assert caught.value.details["reason"] == "refused"
    assert not connector.reversals


async def test_a_connection_closed_mid_call_fails_every_pending_call(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(connections=1, reversal_interval_seconds=0.1, reversal_attempts=200)
    await switch.set_faults(slow_ms=60_000)
    calls = [
        asyncio.create_task(connector.call("withdraw", withdrawal(ZHANG, 100), timeout=30)),
        asyncio.create_task(connector.call("balance", {"2": ZHANG}, timeout=30)),
    ]
    await eventually(lambda: len(switch.received) == 2)
    await switch.set_faults(down=True, slow_ms=0)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, BackendUnavailable) for outcome in outcomes)
    withdraw, balance = outcomes
    assert isinstance(withdraw, BackendUnavailable)
    assert isinstance(balance, BackendUnavailable)
    assert withdraw.in_doubt
    assert withdraw.details["reason"] == "connection_lost"
    assert not balance.in_doubt
    # The switch comes back: the repeated reversal reaches it and puts the money back.
    await switch.set_faults(down=False)
    reversal = connector.reversals[-1]
    async with asyncio.timeout(30):
        await reversal.settled.wait()
    assert reversal.state == "acknowledged"
    assert switch.cards[ZHANG].available == 5_000_000


def _switch_settings(port: int) -> ConnectorSettings:
    return ConnectorSettings(
        kind="iso8583",
        host="127.0.0.1",
        port=port,
        timeout_ms=5_000,
        retries=0,
        breaker=BreakerSettings(failure_threshold=3, recovery_seconds=0.3),
    )


async def test_the_breaker_cuts_off_a_dead_switch_and_restores_it(
    switch: SwitchSimulator,
) -> None:
    registry = BackendRegistry({"switch": _switch_settings(switch.address[1])})
    backend = registry.get("switch")
    try:
        await switch.set_faults(down=True)
        for _ in range(3):
            with pytest.raises(BackendUnavailable) as caught:
                await backend.call("echo", {})
            assert caught.value.details["reason"] == "refused"
        assert backend.breaker.state == "opened"
        for _ in range(10):
            with pytest.raises(BackendUnavailable) as caught:
                await backend.call("echo", {})
            assert caught.value.details["reason"] == "circuit_open"
            assert caught.value.code == "BACKEND_UNAVAILABLE"
        assert switch.accepted == 0

        await switch.set_faults(down=False)
        answer = None
        reasons = set()
        async with asyncio.timeout(10):
            while answer is None:
                await asyncio.sleep(0.05)
                try:
                    answer = await backend.call("echo", {})
                except BackendUnavailable as error:
                    reasons.add(error.details["reason"])
        assert reasons <= {"circuit_open"}  # the first call let through was the probe
        assert answer["39"] == "00"
        assert backend.breaker.state == "closed"
    finally:
        await registry.close()


async def test_through_governance_an_unanswered_withdrawal_is_still_reversed(
    switch: SwitchSimulator,
) -> None:
    registry = BackendRegistry({"switch": _switch_settings(switch.address[1])})
    backend = registry.get("switch")
    try:
        await switch.set_faults(drop=True)
        with pytest.raises(BackendTimeout) as caught:
            await backend.call("withdraw", withdrawal(ZHANG, 5_000), timeout=2)
        assert caught.value.in_doubt
        await eventually(lambda: switch.cards[ZHANG].available == 5_000_000)
        assert "0400" in switch.received
    finally:
        await registry.close()
