"""A simulated card switch on loopback, and connectors to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channelhub.connectors.iso8583 import Iso8583Connector
from channelhub.connectors.simulators.switch import SwitchSimulator

ZHANG = "6230580000000018"
LI = "6230580000000026"
UNKNOWN_CARD = "6230589999999996"

#: Build a connector to the switch (keyword arguments go to ``Iso8583Connector``).
MakeConnector = Callable[..., Iso8583Connector]


@pytest.fixture
async def switch() -> AsyncIterator[SwitchSimulator]:
    simulator = SwitchSimulator()
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def make_connector(switch: SwitchSimulator) -> AsyncIterator[MakeConnector]:
    made: list[Iso8583Connector] = []

    def make(**options: Any) -> Iso8583Connector:
        host, port = switch.address
        connector = Iso8583Connector("switch", host, port, **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


@pytest.fixture
async def connector(make_connector: MakeConnector) -> Iso8583Connector:
    return make_connector()


def withdrawal(pan: str, minor: int, *, terminal: str = "ATM00001") -> dict[str, Any]:
    """Return a withdrawal's fields as a mapping would fill them."""
    return {"2": pan, "4": minor, "49": "156", "41": terminal}


async def eventually(check: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until ``check()`` holds (a generous bound, never a pass/fail timing)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state is another object's
            await asyncio.sleep(0.01)
