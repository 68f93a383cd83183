"""The outbound ISO 20022 messages, pure: what is built reads back as it was (hypothesis),
and what cannot be carried is refused naming its field."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.kit.iso20022.fields import InvalidField
from channelhub.kit.iso20022.pacs002 import (
    GroupStatus,
    TransactionStatus,
    read_status_report,
    status_report,
)
from channelhub.kit.iso20022.pacs008 import (
    CreditTransferOrder,
    build_credit_transfer,
    parse_credit_transfers,
)
from channelhub.kit.iso20022.pacs028 import (
    StatusRequest,
    build_status_request,
    read_status_request,
)
from channelhub.kit.iso20022.xml import MessageRejected

# Printable text without blanks at either end (XML keeps it, the readers strip nothing of it).
_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_CHARACTERS, min_size=1, max_size=max_size).filter(
        lambda t: t == t.strip() and t.strip()
    )


_IDS = st.from_regex(r"[A-Za-z0-9/\-?:().,'+]{1,35}", fullmatch=True)
_BICS = st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)
# hypothesis takes naive bounds; ``timezones`` makes every value aware.
_TIMES = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
).map(lambda t: t.replace(microsecond=0))
_DATES = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)).map(str)
_AMOUNTS = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("9999999999999999.99"), places=2
)

_ORDERS = st.builds(
    CreditTransferOrder,
    message_id=_IDS,
    created_at=_TIMES,
    instructing_agent=_BICS,
    instructed_agent=_BICS,
    transaction_id=_IDS,
    end_to_end_id=_IDS,
    amount=_AMOUNTS.map(str),
    currency=st.sampled_from(["CNY", "USD", "EUR", "HKD"]),
    settlement_date=_DATES,
    debtor_name=_text(140),
    debtor_account=_text(34),
    debtor_agent=_BICS,
    creditor_name=_text(140),
    creditor_account=_text(34),
    creditor_agent=_BICS,
    instruction_id=st.none() | _IDS,
    remittance=st.none() | _text(140),
)


@given(_ORDERS)
def test_a_built_credit_transfer_reads_back_as_it_was(order: CreditTransferOrder) -> None:
    message = parse_credit_transfers(build_credit_transfer(order))
    assert message.message_id == order.message_id
    assert dt.datetime.fromisoformat(message.created_at) == order.created_at
    assert (message.count, message.settlement_method) == (1, "CLRG")
    assert (message.instructing_agent, message.instructed_agent) == (
        order.instructing_agent,
        order.instructed_agent,
    )
    (read,) = message.transactions
    assert Decimal(read.amount) == Decimal(order.amount)
    assert (read.tx_id, read.end_to_end_id, read.instruction_id) == (
        order.transaction_id,
        order.end_to_end_id,
        order.instruction_id,
    )
    assert (read.currency, read.settlement_date, read.charge_bearer) == (
        order.currency,
        order.settlement_date,
        "SLEV",
    )
    assert (read.debtor_name, read.debtor_account, read.debtor_agent) == (
        order.debtor_name,
        order.debtor_account,
        order.debtor_agent,
    )
    assert (read.creditor_name, read.creditor_account, read.creditor_agent) == (
        order.creditor_name,
        order.creditor_account,
        order.creditor_agent,
    )
    assert read.remittance == order.remittance


@given(
    st.builds(
        StatusRequest,
        message_id=_IDS,
        created_at=_TIMES,
        original_message_id=_IDS,
        original_transaction_id=_IDS,
        instructing_agent=st.none() | _BICS,
        instructed_agent=st.none() | _BICS,
    )
)
def test_a_built_status_request_reads_back_as_it_was(request: StatusRequest) -> None:
    assert read_status_request(build_status_request(request)) == request


_STATUSES = st.sampled_from(["ACSC", "ACSP", "ACCP", "PDNG", "RJCT"])
_LINES = st.builds(
    TransactionStatus,
    end_to_end_id=_IDS,
    tx_id=_IDS,
    status=_STATUSES,
    reason=st.none() | st.from_regex(r"[A-Z]{2}[0-9]{2}", fullmatch=True),
)


@given(_IDS, _IDS, _STATUSES, st.lists(_LINES, max_size=5))
def test_a_built_status_report_reads_back_as_it_was(
    report_id: str, original: str, group: str, lines: list[TransactionStatus]
) -> None:
    body = status_report(
        message_id=report_id,
        created_at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
        group=GroupStatus(original, None, len(lines), group),
        transactions=lines,
        original_message_name="pacs.008.001.08",
        instructing_agent=None,
        instructed_agent=None,
    )
    read = read_status_report(body)
    assert (read["message_id"], read["original_message_id"]) == (report_id, original)
    assert (read["group_status"], read["group_reason"]) == (group, None)
    assert read["transactions"] == [
        {
            "original_message_id": original,
            "original_transaction_id": line.tx_id,
            "original_end_to_end_id": line.end_to_end_id,
            "status": line.status,
            "reason": line.reason,
        }
        for line in lines
    ]


@given(st.binary(max_size=2_000))
def test_no_bytes_make_the_report_reader_fail_otherwise(body: bytes) -> None:
    with contextlib.suppress(MessageRejected):
        read_status_report(body)


def _order(**changes: object) -> CreditTransferOrder:
    fields: dict[str, object] = {
        "message_id": "M1",
        "created_at": dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
        "instructing_agent": "CHUBCNSHXXX",
        "instructed_agent": "CLRHCNBJ",
        "transaction_id": "T1",
        "end_to_end_id": "E1",
        "amount": "1.00",
        "currency": "CNY",
        "settlement_date": "2026-12-02",
        "debtor_name": "A",
        "debtor_account": "1",
        "debtor_agent": "CHUBCNSHXXX",
        "creditor_name": "B",
        "creditor_account": "2",
        "creditor_agent": "BKCHCNBJXXX",
    }
    fields.update(changes)
    return CreditTransferOrder(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 1.0),
        ("amount", "1.001"),
        ("amount", "1e3"),
        ("amount", "0"),
        ("currency", "ZZZ"),
        ("end_to_end_id", "x" * 36),
        ("debtor_agent", "CHUB"),
        ("settlement_date", "2026-13-01"),
        ("creditor_name", "tab\tinside"),
        ("remittance", "r" * 141),
    ],
)
def test_what_a_message_cannot_carry_is_refused_naming_it(field: str, value: object) -> None:
    with pytest.raises(InvalidField) as caught:
        build_credit_transfer(_order(**{field: value}))
    assert caught.value.field == field


def test_a_jpy_amount_has_no_decimals() -> None:
    with pytest.raises(InvalidField, match="0 decimal places"):
        build_credit_transfer(_order(amount="100.50", currency="JPY"))
    assert b">100<" in build_credit_transfer(_order(amount="100", currency="JPY"))
