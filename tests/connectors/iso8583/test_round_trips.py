"""The iso8583 connector against the simulated switch, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from channelhub.connectors.base import BackendNotConfigured, Connector
from channelhub.connectors.iso8583 import Iso8583Connector, Iso8583RequestError
from channelhub.connectors.simulators.switch import SwitchSimulator
from channelhub.kit import iso8583 as wire
from tests.connectors.iso8583.conftest import (
    LI,
    UNKNOWN_CARD,
    ZHANG,
    MakeConnector,
    eventually,
    withdrawal,
)


async def test_it_is_a_connector(connector: Iso8583Connector) -> None:
    assert isinstance(connector, Connector)
    assert connector.name == "switch"


async def test_echo(connector: Iso8583Connector) -> None:
    answer = await connector.call("echo", {}, timeout=5)
    assert (answer["t"], answer["39"], answer["70"]) == ("0810", "00", "301")


async def test_balance(connector: Iso8583Connector) -> None:
    answer = await connector.call("balance", {"2": ZHANG, "49": "156"}, timeout=5)
    assert (answer["t"], answer["39"], answer["3"]) == ("0210", "00", "310000")
    assert wire.balances_of(answer["54"])["02"] == ("CNY", 5_000_000)


async def test_an_approved_withdrawal_is_remembered_by_terminal_stan_and_time(
    connector: Iso8583Connector, switch: SwitchSimulator
) -> None:
    answer = await connector.call("withdraw", withdrawal(ZHANG, 20_000), timeout=5)
    assert (answer["t"], answer["39"], answer["4"]) == ("0210", "00", "000000020000")
    assert len(answer["38"]) == 6
    record = switch.record("ATM00001", answer["11"], answer["7"])
    assert record is not None
    assert (record.status, record.amount, record.authorization) == (
        "approved",
        20_000,
        answer["38"],
    )
    assert switch.cards[ZHANG].available == 5_000_000 - 20_000


async def test_field_39_comes_back_as_the_switch_gave_it(
    connector: Iso8583Connector, switch: SwitchSimulator
) -> None:
    over_ceiling = await connector.call("withdraw", withdrawal(ZHANG, 500_001), timeout=5)
    over_available = await connector.call("withdraw", withdrawal(LI, 125_001), timeout=5)
    unknown = await connector.call("withdraw", withdrawal(UNKNOWN_CARD, 100), timeout=5)
    assert (over_ceiling["39"], over_available["39"], unknown["39"]) == ("51", "51", "14")
    assert "38" not in over_ceiling
    assert switch.cards[ZHANG].available == 5_000_000
    assert switch.cards[LI].available == 125_000


async def test_authorize_is_an_0100(connector: Iso8583Connector) -> None:
    answer = await connector.call("authorize", withdrawal(ZHANG, 1_000), timeout=5)
    assert (answer["t"], answer["39"], answer["3"]) == ("0110", "00", "000000")


async def test_many_requests_on_one_connection_answered_out_of_order(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(connections=1)
    await switch.set_faults(reorder=20)
    amounts = [100 * (n + 1) for n in range(20)]
    answers = await asyncio.gather(
        *(connector.call("withdraw", withdrawal(ZHANG, minor), timeout=10) for minor in amounts)
    )
    # Each call got the answer to its own request ...
    assert [int(answer["4"]) for answer in answers] == amounts
    assert all(answer["39"] == "00" for answer in answers)
    # ... all over one connection, though the switch answered them last first.
    assert switch.accepted == 1
    assert connector.opened == 1
    sent = [answer["11"] for answer in answers]
    assert list(switch.answered) == sent[::-1]


async def test_an_idle_connection_sends_echo_tests(
    make_connector: MakeConnector, switch: SwitchSimulator
) -> None:
    connector = make_connector(keepalive_seconds=0.05)
    await connector.call("balance", {"2": ZHANG}, timeout=5)
    assert "0800" not in switch.received
    await eventually(lambda: list(switch.received).count("0800") >= 2)
    assert switch.accepted == 1  # the echoes kept the one connection


async def test_a_connection_the_switch_closed_is_opened_again(
    connector: Iso8583Connector, switch: SwitchSimulator
) -> None:
    await connector.call("echo", {}, timeout=5)
    await switch.set_faults(down=True)
    await switch.set_faults(down=False)
    await eventually(lambda: connector.connected == 0)
    answer = await connector.call("echo", {}, timeout=5)
    assert answer["39"] == "00"
    assert connector.opened == 2


async def test_bad_requests_are_refused_before_anything_is_sent(
    connector: Iso8583Connector, switch: SwitchSimulator
) -> None:
    requests: list[dict[str, object]] = [
        {"4": "12345678901234"},  # too long for field 4
        {"4": -1},
        {"4": 1.5},
        {"11": "000001"},  # the connector's own STAN
        {"x": "1"},
        {"999": "1"},
    ]
    for request in requests:
        with pytest.raises(Iso8583RequestError) as caught:
            await connector.call("withdraw", {"2": ZHANG, **request}, timeout=5)
        assert caught.value.code == "VALIDATION_FAILED"
        assert ZHANG not in caught.value.message
    with pytest.raises(BackendNotConfigured):
        await connector.call("transfer", {}, timeout=5)
    assert switch.accepted == 0
