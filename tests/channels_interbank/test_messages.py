"""The pacs.008 reader and the pacs.002 writer, pure: what is read, what is refused, and that
no input whatever makes the reader fail otherwise than with MessageRejected."""

from __future__ import annotations

import contextlib
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from channelhub.channels.iso20022.pacs002 import (
    NAMESPACE as PACS002,
)
from channelhub.channels.iso20022.pacs002 import (
    GroupStatus,
    TransactionStatus,
    group_status,
    reason_for,
    status_report,
)
from channelhub.channels.iso20022.pacs008 import (
    MessageRejected,
    normalize_bic,
    parse_credit_transfers,
)
from tests.channels_interbank.sender import Payment, pacs008


def _rejected(body: bytes) -> MessageRejected:
    try:
        parse_credit_transfers(body)
    except MessageRejected as rejected:
        return rejected
    raise AssertionError("the message was accepted")


def test_every_field_the_channel_needs_is_read() -> None:
    payments = [
        Payment("62170001", "0100.500", tx_id="TX1", end_to_end_id="E1"),
        Payment("CN12345678901234567890", "7", currency="USD", iban=True, remittance=None),
    ]
    message = parse_credit_transfers(pacs008("MSG1", payments, control_sum="107.5"))
    assert message.message_id == "MSG1"
    assert message.count == 2
    assert message.settlement_method == "CLRG"
    assert message.instructing_agent == "DEMOCNSHXXX"
    assert message.instructed_agent == "CHUBCNSHXXX"
    first, second = message.transactions
    assert (first.tx_id, first.end_to_end_id, first.amount, first.currency) == (
        "TX1",
        "E1",
        "100.5",
        "CNY",
    )
    assert first.creditor_account == "62170001"
    assert first.debtor_name == "Zhou Wei"
    assert first.debtor_agent == "DEMOCNSHXXX"
    assert first.remittance == "Invoice 2026-001"
    assert (second.amount, second.currency, second.remittance) == ("7", "USD", None)
    assert second.creditor_account == "CN12345678901234567890"


def test_the_fingerprint_ignores_layout_but_not_content() -> None:
    payments = [Payment("62170001", "10.00", tx_id="TX1", end_to_end_id="E1")]
    body = pacs008("MSG1", payments)
    pretty = etree.tostring(etree.fromstring(body), pretty_print=True)
    fingerprint = parse_credit_transfers(body).fingerprint()
    assert parse_credit_transfers(pretty).fingerprint() == fingerprint
    other = [Payment("62170001", "10.01", tx_id="TX1", end_to_end_id="E1")]
    assert parse_credit_transfers(pacs008("MSG1", other)).fingerprint() != fingerprint


def test_structural_faults_name_what_is_wrong_and_keep_the_message_id() -> None:
    good = pacs008("MSG1", [Payment("62170001", "10.00", tx_id="TX1")])
    cases = {
        b"<TxId>TX1</TxId>": (b"", "TxId is missing"),
        b"<ChrgBr>SLEV</ChrgBr>": (b"<ChrgBr>XXXX</ChrgBr>", "ChrgBr must be one of"),
        b'Ccy="CNY"': (b'Ccy="cny"', "Ccy of three capital letters"),
        b'CNY">10.00<': (b'CNY">-10.00<', "IntrBkSttlmAmt is not in the required format"),
        b"<SttlmMtd>CLRG</SttlmMtd>": (b"", "SttlmMtd is missing"),
    }
    for find, (replace, detail) in cases.items():
        rejected = _rejected(good.replace(find, replace, 1))
        assert rejected.message_id == "MSG1"
        assert detail in rejected.detail, rejected.detail
    assert _rejected(good.replace(b"<MsgId>MSG1</MsgId>", b"")).message_id is None
    too_many = pacs008("MSG2", [Payment("62170001", "1")] * 101)
    assert "1 to 100 transactions" in _rejected(too_many).detail


def test_a_bic8_is_its_head_office() -> None:
    assert normalize_bic("DEMOCNSH") == "DEMOCNSHXXX"
    assert normalize_bic("DEMOCNSH001") == "DEMOCNSH001"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_no_bytes_break_the_reader(body: bytes) -> None:
    with contextlib.suppress(MessageRejected):
        parse_credit_transfers(body)


_GOOD = pacs008("MSG1", [Payment("62170001", "10.00", tx_id="TX1")])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_GOOD) - 1), st.binary(min_size=1, max_size=8))
def test_no_corruption_of_a_good_message_breaks_the_reader(position: int, junk: bytes) -> None:
    body = _GOOD[:position] + junk + _GOOD[position + len(junk) :]
    with contextlib.suppress(MessageRejected):
        parse_credit_transfers(body)


def test_reasons_come_from_one_table() -> None:
    assert reason_for("NOT_FOUND", {}) == "AC01"
    assert reason_for("ACCOUNT_CLOSED", {}) == "AC04"
    assert reason_for("ACCOUNT_INACTIVE", {}) == "AC06"
    assert reason_for("CURRENCY_MISMATCH", {}) == "AM03"
    assert reason_for("INVALID_AMOUNT", {"field": "amount"}) == "AM09"
    assert reason_for("INVALID_AMOUNT", {"field": "currency"}) == "AM03"
    assert reason_for("IDEMPOTENCY_KEY_REUSED", {}) == "DUPL"
    assert reason_for("INTERNAL_ERROR", {}) == "MS03"
    assert group_status(["ACSC", "ACSC"]) == "ACSC"
    assert group_status(["RJCT"]) == "RJCT"
    assert group_status(["ACSC", "RJCT"]) == "PART"
    assert group_status(["ACSC", "PDNG"]) == "PART"


def test_the_status_report_lists_group_and_transactions() -> None:
    body = status_report(
        message_id="REPORT1",
        created_at=dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC),
        group=GroupStatus("MSG1", "2026-03-02T09:30:00+08:00", 2, "PART"),
        transactions=[
            TransactionStatus("E1", "TX1", "ACSC", reference="abc"),
            TransactionStatus("E2", "TX2", "RJCT", reason="AC04", info="the account is closed"),
        ],
        original_message_name="pacs.008.001.08",
        instructing_agent="CHUBCNSHXXX",
        instructed_agent="DEMOCNSHXXX",
    )
    document = etree.fromstring(body)
    ns = {"s": PACS002}
    report = document.find("s:FIToFIPmtStsRpt", ns)
    assert report is not None
    assert report.findtext("s:GrpHdr/s:CreDtTm", namespaces=ns) == "2026-03-02T01:30:00Z"
    assert report.findtext("s:OrgnlGrpInfAndSts/s:OrgnlMsgNmId", namespaces=ns) == (
        "pacs.008.001.08"
    )
    assert report.findtext("s:OrgnlGrpInfAndSts/s:GrpSts", namespaces=ns) == "PART"
    lines = report.findall("s:TxInfAndSts", ns)
    assert [line.findtext("s:TxSts", namespaces=ns) for line in lines] == ["ACSC", "RJCT"]
    assert lines[1].findtext("s:StsRsnInf/s:Rsn/s:Cd", namespaces=ns) == "AC04"
    # ISO 20022 element order within TxInfAndSts.
    assert [etree.QName(child).localname for child in lines[1]] == [
        "OrgnlEndToEndId",
        "OrgnlTxId",
        "TxSts",
        "StsRsnInf",
    ]
