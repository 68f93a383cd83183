"""The simulated core on a loopback socket and a fixed-record client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channelhub.connectors.fixed import FixedClient, Value
from channelhub.connectors.simulators.core import (
    CORE_FRAMING,
    CORE_REQUEST,
    CORE_RESPONSE,
    CoreSimulator,
)

#: Generous: a call that should succeed never comes near it.
CALL_SECONDS = 10.0

ZHANG = "6217000000000001"
LI = "6217000000000002"
WANG = "6217000000000003"
CHEN = "6217000000000004"


@pytest.fixture
async def core() -> AsyncIterator[CoreSimulator]:
    simulator = CoreSimulator()
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.close()


@pytest.fixture
async def client(core: CoreSimulator) -> AsyncIterator[FixedClient]:
    host, port = core.address
    fixed = FixedClient(host, port, framing=CORE_FRAMING, pool_size=4)
    yield fixed
    await fixed.close()


async def ask(client: FixedClient, /, **values: Value) -> dict[str, Value]:
    """Send one request record to the core and return the answer's fields."""
    return await ask_within(client, CALL_SECONDS, **values)


async def ask_within(client: FixedClient, seconds: float, /, **values: Value) -> dict[str, Value]:
    """Send one request record to the core, giving it ``seconds`` to answer."""
    return await client.call(CORE_REQUEST, values, CORE_RESPONSE, timeout_seconds=seconds)
