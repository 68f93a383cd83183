"""Each fault of the simulated core, and what the client makes of it."""

from __future__ import annotations

import pytest

from channelhub.connectors.fixed import (
    FixedClient,
    FixedGarbage,
    FixedTimeout,
    FixedUnavailable,
)
from channelhub.connectors.simulators.core import CoreSimulator, Faults
from tests.connectors.fixed.conftest import LI, ZHANG, ask, ask_within

#: Short enough for a test to wait out, far shorter than the faults' delays.
SHORT_SECONDS = 0.3


async def test_slow_core_times_out_and_the_connection_is_not_reused(
    client: FixedClient, core: CoreSimulator
) -> None:
    await core.set_faults(slow_ms=60_000)
    with pytest.raises(FixedTimeout) as timed_out:
        await ask_within(client, SHORT_SECONDS, txn_code="BINQ", account=ZHANG)
    assert timed_out.value.request_sent
    assert timed_out.value.code == "BACKEND_TIMEOUT"
    assert client.idle == 0
    await core.set_faults(slow_ms=0)
    # A fresh connection, so the late answer about ZHANG cannot be read as this one's.
    answer = await ask(client, txn_code="BINQ", account=LI)
    assert (answer["account"], answer["ledger_balance"]) == (LI, 125_000)
    assert client.opened == 2


async def test_dropped_answer_is_in_doubt_and_the_inquiry_resolves_it(
    client: FixedClient, core: CoreSimulator
) -> None:
    await core.set_faults(drop=True)
    debit = {"txn_code": "DEBT", "reference": "T-drop", "account": ZHANG, "currency": "CNY"}
    with pytest.raises(FixedTimeout) as timed_out:
        await ask_within(client, SHORT_SECONDS, **debit, amount=300_00)
    assert timed_out.value.request_sent
    await core.set_faults(drop=False)
    status = await ask(client, txn_code="STAT", reference="T-drop")
    assert (status["result"], status["status"], status["amount"]) == ("0000", "A", 300_00)
    assert core.balance(ZHANG) == 5_000_000 - 300_00
    # The platform may decide to undo it instead: the reversal settles it either way.
    assert (await ask(client, txn_code="REVS", reference="T-drop"))["result"] == "0000"
    assert core.balance(ZHANG) == 5_000_000


async def test_garbage_answer_is_refused_by_name(client: FixedClient, core: CoreSimulator) -> None:
    await core.set_faults(garbage=True)
    with pytest.raises(FixedGarbage) as garbage:
        await ask(client, txn_code="BINQ", account=ZHANG)
    assert garbage.value.request_sent
    assert garbage.value.code == "BACKEND_BAD_RESPONSE"
    assert garbage.value.cause.details["field"] == "amount"
    assert client.idle == 0
    await core.set_faults(garbage=False)
    assert (await ask(client, txn_code="BINQ", account=ZHANG))["result"] == "0000"


async def test_down_core_is_unavailable_at_once_and_comes_back(
    client: FixedClient, core: CoreSimulator
) -> None:
    assert (await ask(client, txn_code="BINQ", account=ZHANG))["result"] == "0000"
    assert client.idle == 1
    await core.set_faults(down=True)
    # The timeout is long: an answer of FixedUnavailable rather than FixedTimeout shows that
    # the refusal is immediate.
    with pytest.raises(FixedUnavailable) as down:
        await ask_within(client, 30, txn_code="BINQ", account=ZHANG)
    assert down.value.code == "BACKEND_UNAVAILABLE"
    with pytest.raises(FixedUnavailable) as refused:
        await ask_within(client, 30, txn_code="BINQ", account=ZHANG)
    assert not refused.value.request_sent
    await core.set_faults(down=False)
    assert (await ask(client, txn_code="BINQ", account=ZHANG))["result"] == "0000"


async def test_a_core_started_down_refuses() -> None:
    core = CoreSimulator(faults=Faults(down=True))
    host, port = await core.start("127.0.0.1", 0)
    client = FixedClient(host, port)
    try:
        with pytest.raises(FixedUnavailable):
            await ask(client, txn_code="BINQ", account=ZHANG)
        await core.set_faults(down=False)
        assert (await ask(client, txn_code="BINQ", account=ZHANG))["result"] == "0000"
    finally:
        await client.close()
        await core.close()


async def test_a_closed_client_refuses_calls(client: FixedClient) -> None:
    await client.close()
    with pytest.raises(FixedUnavailable, match="closed"):
        await ask(client, txn_code="BINQ", account=ZHANG)
