"""pacs.008.001.08 (FIToFICustomerCreditTransfer): credit transfers, read safely and written.

Reading is for another bank's messages (the interbank channel, the simulated clearing house);
writing (``build_credit_transfer``) is for the ``iso20022`` connector's one-transaction
messages, which the reader reads back as they were built.

Pure: the body's bytes in, a checked message out, or ``MessageRejected`` with the ISO reason
code (FF01). The body is hostile until proven otherwise: the size is bounded here and
``channelhub.kit.iso20022.xml.parse_hostile`` parses it with DTDs and entities refused. No XSD
is shipped: the structure relied on (which elements, how often, which lengths, codes and
patterns) is checked here in code, and elements it does not read are ignored.

Whole-message checks (any failure rejects every transaction with FF01): a Document in the
pacs.008.001.08 namespace, a group header with a message id, a creation time, ``NbOfTxs``
equal to the number of transactions (at most ``MAX_TRANSACTIONS``), ``CtrlSum`` and
``TtlIntrBkSttlmAmt`` equal to the sums when given, a settlement method, the instructing
agent's BIC, and in every transaction an end-to-end id, a transaction id (unique within the
message), an amount in ISO decimal notation with a currency code, a charge bearer, a debtor,
debtor agent, creditor agent and creditor. Whether an amount suits its currency (minor
digits, more than zero) and whether the account exists are questions about one transaction
and are answered per transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import orjson
from lxml import etree

from channelhub.kit.iso20022.fields import AMOUNT as _AMOUNT
from channelhub.kit.iso20022.fields import BIC as _BIC
from channelhub.kit.iso20022.fields import CURRENCY as _CURRENCY
from channelhub.kit.iso20022.fields import DATE as _DATE
from channelhub.kit.iso20022.fields import (
    InvalidField,
    check_amount,
    check_bic,
    check_date,
    check_text,
    iso_time,
)
from channelhub.kit.iso20022.xml import MessageRejected, parse_hostile

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_TRANSACTIONS",
    "MESSAGE_NAME",
    "NAMESPACE",
    "CreditTransfer",
    "CreditTransferMessage",
    "CreditTransferOrder",
    "MessageRejected",
    "build_credit_transfer",
    "normalize_bic",
    "parse_credit_transfers",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
MESSAGE_NAME = "pacs.008.001.08"
#: The largest body read at all: about 1,500 transactions' worth, far above the cap below.
MAX_MESSAGE_BYTES = 1_048_576
#: The most transactions one message may carry; the sender splits a larger batch.
MAX_TRANSACTIONS = 100

_NS = {"p": NAMESPACE}

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}")
_NUMERIC15 = re.compile(r"[0-9]{1,15}")
_UUID4 = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
# DecimalNumber (CtrlSum): at most 18 digits, 17 after the point.
_DECIMAL = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,17}))?")
_SETTLEMENT_METHODS = frozenset({"INDA", "INGA", "COVE", "CLRG"})
_CHARGE_BEARERS = frozenset({"DEBT", "CRED", "SHAR", "SLEV"})


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One CdtTrfTxInf: a payment to one creditor account."""

    index: int
    end_to_end_id: str
    tx_id: str
    instruction_id: str | None
    uetr: str | None
    #: The amount as a plain decimal string, leading and trailing zeros dropped ("1250.5").
    amount: str
    currency: str
    charge_bearer: str
    settlement_date: str | None
    debtor_name: str | None
    debtor_account: str | None
    debtor_agent: str | None
    creditor_agent: str | None
    creditor_name: str | None
    #: The creditor account's IBAN or other id; None when the transaction names none.
    creditor_account: str | None
    remittance: str | None


@dataclass(frozen=True, slots=True)
class CreditTransferMessage:
    """A checked pacs.008: its group header and its transactions, in order."""

    message_id: str
    created_at: str
    count: int
    control_sum: str | None
    total_amount: str | None
    total_currency: str | None
    settlement_date: str | None
    settlement_method: str
    instructing_agent: str
    instructed_agent: str | None
    transactions: tuple[CreditTransfer, ...]

    def fingerprint(self) -> str:
        """Return the SHA-256 of everything read from the message: the same message sent
        again has the same fingerprint, however its XML was laid out."""
        return hashlib.sha256(orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)).hexdigest()


def normalize_bic(bic: str) -> str:
    """Return a BIC in its 11-character form: a BIC8 names the bank's head office, XXX."""
    return bic if len(bic) == 11 else f"{bic}XXX"


class _Reader:
    """Reads elements of one message, naming the path of whatever is wrong."""

    def __init__(self) -> None:
        self.message_id: str | None = None

    def fail(self, detail: str) -> MessageRejected:
        return MessageRejected(detail, message_id=self.message_id)

    def one(self, parent: Any, path: str, *, required: bool = True) -> Any:
        """Return the single element at ``path``; None only when it is optional and absent."""
        found = parent.findall(path, _NS)
        if len(found) > 1:
            raise self.fail(f"{_plain(path)} appears more than once")
        if not found:
            if required:
                raise self.fail(f"{_plain(path)} is missing")
            return None
        return found[0]

    def text(
        self,
        parent: Any,
        path: str,
        *,
        required: bool = True,
        max_length: int = 35,
        pattern: re.Pattern[str] | None = None,
        codes: frozenset[str] | None = None,
    ) -> str | None:
        element = self.one(parent, path, required=required)
        if element is None:
            return None
        value = (element.text or "").strip()
        name = _plain(path)
        if not value or len(value) > max_length:
            raise self.fail(f"{name} must have 1 to {max_length} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(f"{name} is not in the required format")
        if codes is not None and value not in codes:
            raise self.fail(f"{name} must be one of {', '.join(sorted(codes))}")
        return value

    def required(self, parent: Any, path: str, **kwargs: Any) -> str:
        value = self.text(parent, path, **kwargs)
        assert value is not None  # required=True raises instead
        return value

    def date(self, parent: Any, path: str) -> str | None:
        value = self.text(parent, path, required=False, max_length=10, pattern=_DATE)
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise self.fail(f"{_plain(path)} is not a date") from None
        return value

    def bic(self, parent: Any, path: str, *, required: bool) -> str | None:
        return self.text(parent, f"{path}/p:FinInstnId/p:BICFI", required=required, pattern=_BIC)

    def account(self, parent: Any, path: str) -> str | None:
        holder = self.one(parent, f"{path}/p:Id", required=False)
        if holder is None:
            return None
        iban = self.text(holder, "p:IBAN", required=False, max_length=34, pattern=_IBAN)
        other = self.text(holder, "p:Othr/p:Id", required=False, max_length=34)
        if (iban is None) == (other is None):
            raise self.fail(f"{_plain(path)}/Id needs exactly one of IBAN and Othr/Id")
        return iban or other


def _plain(path: str) -> str:
    return path.replace("p:", "")


def _amount(value: str) -> str:
    """Return an ISO decimal without leading or trailing zeros: "0100.50" -> "100.5"."""
    whole, _, fraction = value.partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def parse_credit_transfers(
    body: bytes, *, max_transactions: int = MAX_TRANSACTIONS
) -> CreditTransferMessage:
    """Read and check a pacs.008.001.08 message.

    Raises:
        MessageRejected: the body is not a message this channel can process (FF01).
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageRejected(f"the message exceeds {MAX_MESSAGE_BYTES} bytes")
    root = parse_hostile(body)
    if root.tag != f"{{{NAMESPACE}}}Document":
        raise MessageRejected(f"the root element must be Document in the {NAMESPACE} namespace")
    read = _Reader()
    transfer = read.one(root, "p:FIToFICstmrCdtTrf")
    header = read.one(transfer, "p:GrpHdr")
    read.message_id = read.required(header, "p:MsgId")
    created_at = read.required(header, "p:CreDtTm", max_length=40)
    try:
        dt.datetime.fromisoformat(created_at)
    except ValueError:
        raise read.fail("GrpHdr/CreDtTm is not an ISO date and time") from None
    declared = int(read.required(header, "p:NbOfTxs", max_length=15, pattern=_NUMERIC15))
    elements = transfer.findall("p:CdtTrfTxInf", _NS)
    if declared != len(elements):
        raise read.fail(f"NbOfTxs says {declared} but the message has {len(elements)}")
    if not 1 <= declared <= max_transactions:
        raise read.fail(f"a message carries 1 to {max_transactions} transactions")
    control_sum = read.text(header, "p:CtrlSum", required=False, max_length=36, pattern=_DECIMAL)
    total = read.one(header, "p:TtlIntrBkSttlmAmt", required=False)
    total_amount = total_currency = None
    if total is not None:
        total_amount = read.required(header, "p:TtlIntrBkSttlmAmt", max_length=25, pattern=_AMOUNT)
        total_currency = total.get("Ccy")
        if total_currency is None or not _CURRENCY.fullmatch(total_currency):
            raise read.fail("GrpHdr/TtlIntrBkSttlmAmt needs a Ccy of three capital letters")
    settlement_method = read.required(
        header, "p:SttlmInf/p:SttlmMtd", max_length=4, codes=_SETTLEMENT_METHODS
    )
    instructing = read.bic(header, "p:InstgAgt", required=True)
    assert instructing is not None
    transactions = tuple(
        _transaction(read, element, index) for index, element in enumerate(elements, 1)
    )
    message = CreditTransferMessage(
        message_id=read.message_id,
        created_at=created_at,
        count=declared,
        control_sum=control_sum,
        total_amount=total_amount,
        total_currency=total_currency,
        settlement_date=read.date(header, "p:IntrBkSttlmDt"),
        settlement_method=settlement_method,
        instructing_agent=instructing,
        instructed_agent=read.bic(header, "p:InstdAgt", required=False),
        transactions=transactions,
    )
    _check_sums(read, message)
    return message


def _transaction(read: _Reader, element: Any, index: int) -> CreditTransfer:
    try:
        return _transaction_fields(read, element, index)
    except MessageRejected as error:
        raise read.fail(f"CdtTrfTxInf {index}: {error.detail}") from None


def _transaction_fields(read: _Reader, element: Any, index: int) -> CreditTransfer:
    ids = read.one(element, "p:PmtId")
    money = read.one(element, "p:IntrBkSttlmAmt")
    amount = read.required(element, "p:IntrBkSttlmAmt", max_length=25, pattern=_AMOUNT)
    currency = money.get("Ccy")
    if currency is None or not _CURRENCY.fullmatch(currency):
        raise read.fail("IntrBkSttlmAmt needs a Ccy of three capital letters")
    for party in ("p:Dbtr", "p:DbtrAgt", "p:CdtrAgt", "p:Cdtr"):
        read.one(element, party)
    remittance = [(line.text or "").strip() for line in element.findall("p:RmtInf/p:Ustrd", _NS)]
    return CreditTransfer(
        index=index,
        end_to_end_id=read.required(ids, "p:EndToEndId"),
        tx_id=read.required(ids, "p:TxId"),
        instruction_id=read.text(ids, "p:InstrId", required=False),
        uetr=read.text(ids, "p:UETR", required=False, max_length=36, pattern=_UUID4),
        amount=_amount(amount),
        currency=currency,
        charge_bearer=read.required(element, "p:ChrgBr", max_length=4, codes=_CHARGE_BEARERS),
        settlement_date=read.date(element, "p:IntrBkSttlmDt"),
        debtor_name=read.text(element, "p:Dbtr/p:Nm", required=False, max_length=140),
        debtor_account=read.account(element, "p:DbtrAcct"),
        debtor_agent=read.bic(element, "p:DbtrAgt", required=False),
        creditor_agent=read.bic(element, "p:CdtrAgt", required=False),
        creditor_name=read.text(element, "p:Cdtr/p:Nm", required=False, max_length=140),
        creditor_account=read.account(element, "p:CdtrAcct"),
        remittance=" ".join(line for line in remittance if line)[:140] or None,
    )


def _check_sums(read: _Reader, message: CreditTransferMessage) -> None:
    amounts = [Decimal(t.amount) for t in message.transactions]
    if message.control_sum is not None and Decimal(message.control_sum) != sum(amounts):
        raise read.fail("GrpHdr/CtrlSum is not the sum of the transactions' amounts")
    if message.total_amount is None:
        return
    if any(t.currency != message.total_currency for t in message.transactions):
        raise read.fail("GrpHdr/TtlIntrBkSttlmAmt is in another currency than a transaction")
    if Decimal(message.total_amount) != sum(amounts):
        raise read.fail("GrpHdr/TtlIntrBkSttlmAmt is not the sum of the transactions' amounts")


# --- writing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditTransferOrder:
    """Everything one outgoing pacs.008 with a single CdtTrfTxInf says.

    ``amount`` is a decimal string (``"1250.00"``), never a float; accounts are "other" ids
    (Othr/Id), agents are BICs.
    """

    message_id: str
    created_at: dt.datetime
    instructing_agent: str
    instructed_agent: str
    transaction_id: str
    end_to_end_id: str
    amount: str
    currency: str
    settlement_date: str
    debtor_name: str
    debtor_account: str
    debtor_agent: str
    creditor_name: str
    creditor_account: str
    creditor_agent: str
    instruction_id: str | None = None
    remittance: str | None = None

    def check(self) -> None:
        """Refuse, naming the field, any value the message cannot carry as it is.

        Raises:
            InvalidField: the first value that does not fit.
        """
        for name in ("message_id", "transaction_id", "end_to_end_id"):
            check_text(name, getattr(self, name))
        if self.instruction_id is not None:
            check_text("instruction_id", self.instruction_id)
        for name in ("instructing_agent", "instructed_agent", "debtor_agent", "creditor_agent"):
            check_bic(name, getattr(self, name))
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise InvalidField("currency", "three capital letters are required")
        check_amount("amount", self.amount, self.currency)
        check_date("settlement_date", self.settlement_date)
        for name in ("debtor_name", "creditor_name"):
            check_text(name, getattr(self, name), max_length=140)
        for name in ("debtor_account", "creditor_account"):
            check_text(name, getattr(self, name), max_length=34)
        if self.remittance is not None:
            check_text("remittance", self.remittance, max_length=140)


def _put(parent: Any, tag: str, text: str | None = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _put_agent(parent: Any, tag: str, bic: str) -> None:
    _put(_put(_put(parent, tag), "FinInstnId"), "BICFI", bic)


def _put_account(parent: Any, tag: str, number: str) -> None:
    _put(_put(_put(_put(parent, tag), "Id"), "Othr"), "Id", number)


def build_credit_transfer(order: CreditTransferOrder) -> bytes:
    """Return the pacs.008.001.08 document of ``order``: one transaction, cleared (CLRG), the
    charges following the scheme's level (SLEV).

    Raises:
        InvalidField: a value of ``order`` the message cannot carry (nothing is built).
    """
    order.check()
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    transfer = _put(root, "FIToFICstmrCdtTrf")
    header = _put(transfer, "GrpHdr")
    _put(header, "MsgId", order.message_id)
    _put(header, "CreDtTm", iso_time(order.created_at))
    _put(header, "NbOfTxs", "1")
    _put(_put(header, "SttlmInf"), "SttlmMtd", "CLRG")
    _put_agent(header, "InstgAgt", order.instructing_agent)
    _put_agent(header, "InstdAgt", order.instructed_agent)
    line = _put(transfer, "CdtTrfTxInf")
    ids = _put(line, "PmtId")
    if order.instruction_id is not None:
        _put(ids, "InstrId", order.instruction_id)
    _put(ids, "EndToEndId", order.end_to_end_id)
    _put(ids, "TxId", order.transaction_id)
    _put(line, "IntrBkSttlmAmt", order.amount, Ccy=order.currency)
    _put(line, "IntrBkSttlmDt", order.settlement_date)
    _put(line, "ChrgBr", "SLEV")
    _put(_put(line, "Dbtr"), "Nm", order.debtor_name)
    _put_account(line, "DbtrAcct", order.debtor_account)
    _put_agent(line, "DbtrAgt", order.debtor_agent)
    _put_agent(line, "CdtrAgt", order.creditor_agent)
    _put(_put(line, "Cdtr"), "Nm", order.creditor_name)
    _put_account(line, "CdtrAcct", order.creditor_account)
    if order.remittance is not None:
        _put(_put(line, "RmtInf"), "Ustrd", order.remittance)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
