"""A simulated clearing house on loopback, and iso20022 connectors pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channelhub.connectors.iso20022 import Iso20022Connector
from channelhub.connectors.simulators.clearing import ClearingSimulator

#: Seed accounts of the simulated clearing house (its module's table).
LIU = ("BKCHCNBJXXX", "6216610100000001")
SUN_CLOSED = ("BKCHCNBJXXX", "6216610100000002")
ZHAO = ("ICBKCNBJXXX", "6222020200000001")
HUANG_USD = ("ICBKCNBJXXX", "6222020200000002")
#: This bank, the debtor's.
OUR_BIC = "CHUBCNSHXXX"
CLEARING = "CLRHCNBJXXX"

#: Build a connector to the clearing house (keyword arguments go to ``Iso20022Connector``).
MakeConnector = Callable[..., Iso20022Connector]


@pytest.fixture
async def make_connector(clearing: ClearingSimulator) -> AsyncIterator[MakeConnector]:
    made: list[Iso20022Connector] = []

    def make(**options: Any) -> Iso20022Connector:
        options.setdefault("base_url", clearing.url)
        connector = Iso20022Connector("clearing", **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


@pytest.fixture
async def connector(make_connector: MakeConnector) -> Iso20022Connector:
    return make_connector()


def unique(prefix: str) -> str:
    """Return an id no other test uses (at most 35 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def transfer(
    creditor: tuple[str, str] = LIU, amount: str = "1250.00", **overrides: Any
) -> dict[str, Any]:
    """Return a credit transfer's fields as a mapping would fill them."""
    fields: dict[str, Any] = {
        "message_id": unique("MSG"),
        "transaction_id": unique("TX"),
        "end_to_end_id": unique("E2E"),
        "amount": amount,
        "currency": "CNY",
        "settlement_date": "2026-12-02",
        "debtor_name": "ZHANG WEI",
        "debtor_account": "6217000000000001",
        "debtor_agent": OUR_BIC,
        "creditor_name": "LIU YANG",
        "creditor_account": creditor[1],
        "creditor_agent": creditor[0],
        "remittance": "Invoice 2026-001",
        "instructing_agent": OUR_BIC,
        "instructed_agent": CLEARING,
    }
    fields.update(overrides)
    return fields


def inquiry(original: dict[str, Any]) -> dict[str, Any]:
    """Return a status request's fields about the credit transfer ``original``."""
    return {
        "message_id": unique("INQ"),
        "original_message_id": original["message_id"],
        "original_transaction_id": original["transaction_id"],
    }
