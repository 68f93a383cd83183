"""pacs.002.001.10 (FIToFIPaymentStatusReport): the answer to another bank's pacs.008.

Pure: statuses in, the document's bytes out. ``REASONS`` is the one table that turns the
platform's canonical codes into ISO 20022 status reason codes (ExternalStatusReason1Code).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

__all__ = [
    "NAMESPACE",
    "REASONS",
    "GroupStatus",
    "TransactionStatus",
    "group_status",
    "reason_for",
    "status_report",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"

#: Canonical code -> ISO 20022 status reason code.
REASONS: Mapping[str, str] = {
    "NOT_FOUND": "AC01",  # IncorrectAccountNumber: no account has this number
    "ACCOUNT_CLOSED": "AC04",  # ClosedAccountNumber
    "ACCOUNT_INACTIVE": "AC06",  # BlockedAccount: frozen or dormant
    "ACCOUNT_NOT_CREDITABLE": "AG01",  # TransactionForbidden on this type of account
    "CURRENCY_MISMATCH": "AM03",  # NotAllowedCurrency: the account holds another one
    "INVALID_AMOUNT": "AM09",  # WrongAmount: zero, or more decimals than the currency has
    "IDEMPOTENCY_KEY_REUSED": "DUPL",  # DuplicatePayment
    "VALIDATION_FAILED": "FF01",  # InvalidFileFormat
    "MALFORMED_REQUEST": "FF01",
    "FORBIDDEN": "AG01",
    "LIMIT_EXCEEDED": "AM02",  # NotAllowedAmount
    "RISK_DENIED": "AG01",
    "REVIEW_REJECTED": "AG01",
}
#: NotSpecifiedReasonAgentGenerated: any other refusal.
_UNSPECIFIED = "MS03"


def reason_for(code: str, details: Mapping[str, Any]) -> str:
    """Return the ISO reason code of a canonical refusal.

    An amount refused for its currency (not an ISO 4217 code the bank knows) is AM03, not AM09.
    """
    if code == "INVALID_AMOUNT" and details.get("field") == "currency":
        return "AM03"
    return REASONS.get(code, _UNSPECIFIED)


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """The status of one original transaction: ACSC (credited), RJCT (with a reason) or PDNG
    (the outcome is not known yet: send the message again later)."""

    end_to_end_id: str
    tx_id: str
    status: str
    instruction_id: str | None = None
    uetr: str | None = None
    reason: str | None = None
    info: str | None = None
    #: The bank's reference for the credit (its transaction id), for ACSC and RJCT alike.
    reference: str | None = None
    accepted_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """What the report says about the original message as a whole."""

    original_message_id: str
    original_created_at: str | None
    original_count: int | None
    status: str
    reason: str | None = None
    info: str | None = None


def group_status(statuses: Sequence[str]) -> str:
    """Return the group status of a message whose transactions have ``statuses``."""
    distinct = set(statuses)
    if len(distinct) == 1:
        return distinct.pop()
    return "PART"


def _iso_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _agent(parent: Any, tag: str, bic: str) -> None:
    _sub(_sub(_sub(parent, tag), "FinInstnId"), "BICFI", bic)


def _reason(parent: Any, code: str | None, info: str | None) -> None:
    if code is None:
        return
    reason = _sub(parent, "StsRsnInf")
    _sub(_sub(reason, "Rsn"), "Cd", code)
    if info:
        _sub(reason, "AddtlInf", info[:105])


def status_report(
    *,
    message_id: str,
    created_at: dt.datetime,
    group: GroupStatus,
    transactions: Sequence[TransactionStatus],
    original_message_name: str,
    instructing_agent: str | None,
    instructed_agent: str | None,
) -> bytes:
    """Return a pacs.002.001.10 document: the group's status and each transaction's.

    ``instructing_agent``: this bank's BIC; ``instructed_agent``: the bank that sent the
    original message, when known.
    """
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    report = _sub(root, "FIToFIPmtStsRpt")
    header = _sub(report, "GrpHdr")
    _sub(header, "MsgId", message_id[:35])
    _sub(header, "CreDtTm", _iso_time(created_at))
    if instructing_agent:
        _agent(header, "InstgAgt", instructing_agent)
    if instructed_agent:
        _agent(header, "InstdAgt", instructed_agent)
    original = _sub(report, "OrgnlGrpInfAndSts")
    _sub(original, "OrgnlMsgId", group.original_message_id[:35])
    _sub(original, "OrgnlMsgNmId", original_message_name)
    if group.original_created_at:
        _sub(original, "OrgnlCreDtTm", group.original_created_at)
    if group.original_count is not None:
        _sub(original, "OrgnlNbOfTxs", str(group.original_count))
    _sub(original, "GrpSts", group.status)
    _reason(original, group.reason, group.info)
    for transaction in transactions:
        line = _sub(report, "TxInfAndSts")
        if transaction.instruction_id:
            _sub(line, "OrgnlInstrId", transaction.instruction_id)
        _sub(line, "OrgnlEndToEndId", transaction.end_to_end_id)
        _sub(line, "OrgnlTxId", transaction.tx_id)
        if transaction.uetr:
            _sub(line, "OrgnlUETR", transaction.uetr)
        _sub(line, "TxSts", transaction.status)
        _reason(line, transaction.reason, transaction.info)
        if transaction.accepted_at is not None:
            _sub(line, "AccptncDtTm", _iso_time(transaction.accepted_at))
        if transaction.reference:
            _sub(line, "AcctSvcrRef", transaction.reference[:35])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
