"""The fixed-record client against the simulated core, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from channelhub.connectors.fixed import (
    FixedClient,
    FixedEncodeError,
    FixedFrameError,
    FixedUnavailable,
    Framing,
    decode,
)
from channelhub.connectors.simulators.core import CORE_RESPONSE, CoreSimulator
from tests.connectors.fixed.conftest import CALL_SECONDS, CHEN, LI, WANG, ZHANG, ask


async def test_balance_inquiry(client: FixedClient) -> None:
    answer = await ask(client, txn_code="BINQ", account=ZHANG)
    assert answer["result"] == "0000"
    assert answer["currency"] == "CNY"
    assert answer["ledger_balance"] == answer["available_balance"] == 5_000_000
    assert (await ask(client, txn_code="BINQ", account="6217999999999999"))["result"] == "0014"


async def test_debit_moves_money_once(client: FixedClient, core: CoreSimulator) -> None:
    debit = {"txn_code": "DEBT", "reference": "T-0001", "account": LI, "currency": "CNY"}
    answer = await ask(client, **debit, amount=10_000)
    assert (answer["result"], answer["status"]) == ("0000", "A")
    assert answer["ledger_balance"] == 115_000
    assert isinstance(answer["journal_no"], int)
    assert answer["journal_no"] > 0
    again = await ask(client, **debit, amount=10_000)
    assert again["result"] == "0094"
    assert again["journal_no"] == answer["journal_no"]
    assert core.balance(LI) == 115_000


async def test_insufficient_funds_changes_nothing(client: FixedClient, core: CoreSimulator) -> None:
    answer = await ask(
        client, txn_code="DEBT", reference="T-0002", account=WANG, currency="CNY", amount=1
    )
    assert (answer["result"], answer["status"]) == ("0051", "D")
    assert core.balance(WANG) == 0
    status = await ask(client, txn_code="STAT", reference="T-0002")
    assert (status["result"], status["status"], status["original_txn"]) == ("0000", "D", "DEBT")


async def test_bad_amounts_and_codes_are_refused(client: FixedClient) -> None:
    move = {"txn_code": "CRDT", "account": ZHANG}
    assert (await ask(client, **move, reference="T-3", currency="CNY", amount=0))[
        "result"
    ] == "0013"
    assert (await ask(client, **move, reference="T-4", currency="USD", amount=5))[
        "result"
    ] == "0013"
    assert (await ask(client, **move, currency="CNY", amount=5))["result"] == "0030"
    assert (await ask(client, txn_code="WXYZ", account=ZHANG))["result"] == "0012"


async def test_status_inquiry_says_whether_it_happened(client: FixedClient) -> None:
    await ask(client, txn_code="DEBT", reference="T-0005", account=ZHANG, currency="CNY", amount=1)
    status = await ask(client, txn_code="STAT", reference="T-0005")
    assert (status["result"], status["status"], status["amount"]) == ("0000", "A", 1)
    assert status["account"] == ZHANG
    assert (await ask(client, txn_code="STAT", reference="T-never"))["result"] == "0025"


async def test_reversal_twice_is_reversal_once(client: FixedClient, core: CoreSimulator) -> None:
    await ask(
        client, txn_code="DEBT", reference="T-0006", account=ZHANG, currency="CNY", amount=250_00
    )
    assert core.balance(ZHANG) == 5_000_000 - 250_00
    first = await ask(client, txn_code="REVS", reference="T-0006")
    second = await ask(client, txn_code="REVS", reference="T-0006")
    assert (first["result"], first["status"]) == ("0000", "R")
    assert (second["result"], second["status"]) == ("0000", "R")
    assert first["journal_no"] == second["journal_no"]
    assert core.balance(ZHANG) == 5_000_000
    status = await ask(client, txn_code="STAT", reference="T-0006")
    assert status["status"] == "R"


async def test_a_credit_is_reversed_too(client: FixedClient, core: CoreSimulator) -> None:
    await ask(client, txn_code="CRDT", reference="T-0007", account=WANG, currency="CNY", amount=99)
    assert core.balance(WANG) == 99
    assert (await ask(client, txn_code="REVS", reference="T-0007"))["result"] == "0000"
    assert core.balance(WANG) == 0


async def test_a_reversal_before_its_original_blocks_it(
    client: FixedClient, core: CoreSimulator
) -> None:
    reversal = await ask(client, txn_code="REVS", reference="T-late")
    assert (reversal["result"], reversal["status"]) == ("0000", "R")
    late = await ask(
        client, txn_code="DEBT", reference="T-late", account=ZHANG, currency="CNY", amount=1
    )
    assert late["result"] == "0094"
    assert core.balance(ZHANG) == 5_000_000


async def test_amounts_of_the_maximum_digits_cross_the_wire(
    client: FixedClient, core: CoreSimulator
) -> None:
    top = 10**15 - 1  # 8 packed bytes: 15 digits
    credit = top - core.balance(CHEN)
    answer = await ask(
        client, txn_code="CRDT", reference="T-max", account=CHEN, currency="CNY", amount=credit
    )
    assert (answer["result"], answer["amount"], answer["ledger_balance"]) == ("0000", credit, top)
    assert (await ask(client, txn_code="BINQ", account=CHEN))["ledger_balance"] == top


async def test_a_request_that_does_not_decode_gets_a_format_error(client: FixedClient) -> None:
    answer = await client.exchange(b"\xff" * 83, timeout_seconds=CALL_SECONDS)
    assert decode(CORE_RESPONSE, answer)["result"] == "0030"


async def test_the_pool_serves_many_callers_on_few_connections(
    client: FixedClient, core: CoreSimulator
) -> None:
    answers = await asyncio.gather(
        *(ask(client, txn_code="BINQ", account=(ZHANG, LI)[n % 2]) for n in range(40))
    )
    assert [a["ledger_balance"] for a in answers] == [5_000_000, 125_000] * 20
    assert client.opened <= client.pool_size
    assert core.accepted == client.opened


async def test_a_value_that_does_not_fit_is_refused_before_anything_is_sent(
    client: FixedClient,
) -> None:
    with pytest.raises(FixedEncodeError) as refused:
        await ask(client, txn_code="CRDT", reference="T-big", account=ZHANG, amount=10**15)
    assert refused.value.field == "amount"
    with pytest.raises(FixedFrameError):
        await client.exchange(b"", timeout_seconds=CALL_SECONDS)
    with pytest.raises(ValueError, match="positive"):
        await client.exchange(b"x", timeout_seconds=0)
    assert client.opened == 0


async def test_the_core_hangs_up_on_an_oversized_frame(core: CoreSimulator) -> None:
    host, port = core.address
    lax = FixedClient(host, port, framing=Framing(prefix_bytes=2, max_record_bytes=4000))
    try:
        with pytest.raises(FixedUnavailable) as dropped:
            await lax.exchange(bytes(2000), timeout_seconds=CALL_SECONDS)
    finally:
        await lax.close()
    assert dropped.value.request_sent
