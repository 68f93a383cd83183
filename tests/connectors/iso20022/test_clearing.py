"""The iso20022 connector against the simulated clearing house, over real sockets: what
settles, what is refused and why, duplicates, and status inquiries."""

from __future__ import annotations

import pytest

from channelhub.connectors.base import BackendNotConfigured
from channelhub.connectors.iso20022 import Iso20022Connector, Iso20022RequestError
from channelhub.connectors.simulators.clearing import ClearingSimulator
from tests.connectors.iso20022.conftest import (
    HUANG_USD,
    LIU,
    SUN_CLOSED,
    ZHAO,
    inquiry,
    transfer,
)


async def test_a_transfer_to_a_known_account_settles_and_reaches_the_other_side(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(LIU, "1250.50")
    answer = await connector.call("credit_transfer", request, timeout=10)
    assert answer == {
        "group_status": "ACSC",
        "status": "ACSC",
        "original_message_id": request["message_id"],
        "original_transaction_id": request["transaction_id"],
    }
    assert clearing.credited(LIU[1]) == 125_050
    entry = clearing.entry(request["transaction_id"])
    assert entry is not None
    assert (entry.status, entry.amount, entry.creditor_account) == ("ACSC", "1250.5", LIU[1])
    assert clearing.credited(ZHAO[1]) == 0


@pytest.mark.parametrize(
    ("creditor", "amount", "currency", "reason"),
    [
        (("BKCHCNBJXXX", "6216619999999999"), "10.00", "CNY", "AC01"),
        (("ABOCCNBJXXX", LIU[1]), "10.00", "CNY", "AC01"),  # a bank it holds nothing for
        (SUN_CLOSED, "10.00", "CNY", "AC04"),
        (HUANG_USD, "10.00", "CNY", "AM03"),
        (ZHAO, "1000000.01", "CNY", "AM02"),
    ],
)
async def test_each_refusal_has_its_reason_and_moves_nothing(
    connector: Iso20022Connector,
    clearing: ClearingSimulator,
    creditor: tuple[str, str],
    amount: str,
    currency: str,
    reason: str,
) -> None:
    request = transfer(creditor, amount, currency=currency)
    answer = await connector.call("credit_transfer", request, timeout=10)
    assert (answer["group_status"], answer["status"], answer["reason"]) == ("RJCT", "RJCT", reason)
    assert answer["original_transaction_id"] == request["transaction_id"]
    assert clearing.credited(creditor[1]) == 0


async def test_the_ceiling_itself_is_allowed(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    answer = await connector.call("credit_transfer", transfer(ZHAO, "1000000.00"), timeout=10)
    assert answer["status"] == "ACSC"
    assert clearing.credited(ZHAO[1]) == 100_000_000


async def test_an_account_in_usd_takes_usd(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(HUANG_USD, "99.99", currency="USD")
    assert (await connector.call("credit_transfer", request, timeout=10))["status"] == "ACSC"
    assert clearing.credited(HUANG_USD[1], HUANG_USD[0]) == 9_999


async def test_the_same_message_twice_is_credited_once_and_answered_alike(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(LIU, "20.00")
    first = await connector.call("credit_transfer", request, timeout=10)
    again = await connector.call("credit_transfer", request, timeout=10)
    assert first == again
    assert first["status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 2_000


async def test_a_transaction_id_again_with_other_content_is_a_duplicate(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(LIU, "20.00")
    await connector.call("credit_transfer", request, timeout=10)
    other = {**transfer(LIU, "30.00"), "transaction_id": request["transaction_id"]}
    answer = await connector.call("credit_transfer", other, timeout=10)
    assert (answer["status"], answer["reason"]) == ("RJCT", "DUPL")
    assert clearing.credited(LIU[1]) == 2_000


async def test_a_message_id_again_with_other_content_is_refused_whole(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(LIU, "20.00")
    await connector.call("credit_transfer", request, timeout=10)
    other = transfer(LIU, "30.00", message_id=request["message_id"])
    answer = await connector.call("credit_transfer", other, timeout=10)
    assert (answer["group_status"], answer["status"], answer["reason"]) == ("RJCT",) * 2 + ("DUPL",)
    assert clearing.credited(LIU[1]) == 2_000


async def test_a_status_inquiry_answers_what_became_of_a_transaction(
    connector: Iso20022Connector,
) -> None:
    settled, refused = transfer(LIU, "5.00"), transfer(SUN_CLOSED, "5.00")
    await connector.call("credit_transfer", settled, timeout=10)
    await connector.call("credit_transfer", refused, timeout=10)
    first = await connector.call("status", inquiry(settled), timeout=10)
    second = await connector.call("status", inquiry(refused), timeout=10)
    assert first == {
        "group_status": "ACSC",
        "status": "ACSC",
        "original_message_id": settled["message_id"],
        "original_transaction_id": settled["transaction_id"],
    }
    assert (second["status"], second["reason"]) == ("RJCT", "AC04")


async def test_an_inquiry_about_an_unseen_transaction_refuses_its_late_arrival(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    late = transfer(LIU, "7.00")
    unseen = await connector.call("status", inquiry(late), timeout=10)
    assert (unseen["status"], unseen["reason"]) == ("RJCT", "AG09")
    assert unseen["original_transaction_id"] == late["transaction_id"]
    arrived = await connector.call("credit_transfer", late, timeout=10)
    assert (arrived["status"], arrived["reason"]) == ("RJCT", "DUPL")
    assert clearing.credited(LIU[1]) == 0
    again = await connector.call("status", inquiry(late), timeout=10)
    assert (again["status"], again["reason"]) == ("RJCT", "AG09")


async def test_reject_all_refuses_every_transaction(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    await clearing.set_faults(reject_all=True)
    answer = await connector.call("credit_transfer", transfer(LIU), timeout=10)
    assert (answer["status"], answer["reason"]) == ("RJCT", "MS03")
    assert clearing.credited(LIU[1]) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 12.5),
        ("amount", "12.345"),
        ("amount", "-1.00"),
        ("amount", "0.00"),
        ("amount", "1,250.00"),
        ("currency", "cny"),
        ("currency", "XYZ"),
        ("creditor_agent", "not a bic"),
        ("instructed_agent", None),
        ("message_id", "M" * 36),
        ("transaction_id", ""),
        ("settlement_date", "2026-02-30"),
        ("settlement_date", "02/12/2026"),
        ("creditor_name", "bad\x00name"),
        ("debtor_account", "1" * 35),
        ("remittance", " padded"),
    ],
)
async def test_a_field_that_does_not_fit_is_named_and_nothing_is_sent(
    connector: Iso20022Connector, clearing: ClearingSimulator, field: str, value: object
) -> None:
    request = {**transfer(LIU), field: value}
    with pytest.raises(Iso20022RequestError) as caught:
        await connector.call("credit_transfer", request, timeout=10)
    assert caught.value.code == "VALIDATION_FAILED"
    assert caught.value.details["field"] == field
    assert clearing.requests == 0


async def test_a_missing_field_is_named(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    request = transfer(LIU)
    del request["creditor_account"]
    with pytest.raises(Iso20022RequestError) as caught:
        await connector.call("credit_transfer", request, timeout=10)
    assert caught.value.details["field"] == "creditor_account"
    with pytest.raises(Iso20022RequestError) as caught:
        await connector.call("status", {"message_id": "Q1", "original_message_id": "M"}, timeout=10)
    assert caught.value.details["field"] == "original_transaction_id"
    assert clearing.requests == 0


async def test_an_operation_it_does_not_offer_is_named(connector: Iso20022Connector) -> None:
    with pytest.raises(BackendNotConfigured, match="'reverse'"):
        await connector.call("reverse", {}, timeout=10)


async def test_the_same_transaction_in_another_message_keeps_its_first_status(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    first = transfer(LIU, "9.00")
    await connector.call("credit_transfer", first, timeout=10)
    resent = {**first, "message_id": first["message_id"] + "R"}
    answer = await connector.call("credit_transfer", resent, timeout=10)
    assert answer["status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 900
    asked = await connector.call("status", inquiry(resent), timeout=10)
    assert (asked["status"], asked["original_message_id"]) == ("ACSC", resent["message_id"])
