"""pacs.002.001.10 (FIToFIPaymentStatusReport): the answer to a pacs.008 or a pacs.028.

Pure: statuses in, the document's bytes out (``status_report``), and a report's bytes in, a
plain dict out (``read_status_report``). Which canonical code becomes which reason code is the
interbank channel's table, not this module's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from channelhub.kit.iso20022.fields import iso_time
from channelhub.kit.iso20022.xml import MessageRejected, parse_hostile

__all__ = [
    "MAX_REPORT_BYTES",
    "NAMESPACE",
    "GroupStatus",
    "TransactionStatus",
    "group_status",
    "read_status_report",
    "status_report",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"


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
    _sub(header, "CreDtTm", iso_time(created_at))
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
            _sub(line, "AccptncDtTm", iso_time(transaction.accepted_at))
        if transaction.reference:
            _sub(line, "AcctSvcrRef", transaction.reference[:35])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- reading ------------------------------------------------------------------------------

#: Any version of pacs.002: the elements read here are the same in all of them.
_ANY_VERSION = re.compile(r"urn:iso:std:iso:20022:tech:xsd:pacs\.002\.001\.[0-9]{2}")
_STATUS = re.compile(r"[A-Z]{4}")
#: The largest report read; one about a single transaction is a few kilobytes.
MAX_REPORT_BYTES = 1_048_576


def _text(element: Any, path: str, ns: dict[str, str], *, max_length: int = 35) -> str | None:
    found = element.find(path, ns)
    if found is None:
        return None
    value = (found.text or "").strip()
    if not value or len(value) > max_length:
        raise MessageRejected(f"{path.replace('p:', '')} must have 1 to {max_length} characters")
    return value


def _status(element: Any, path: str, ns: dict[str, str]) -> str | None:
    value = _text(element, path, ns, max_length=4)
    if value is not None and not _STATUS.fullmatch(value):
        raise MessageRejected(f"{path.replace('p:', '')} is not a status code")
    return value


def _reason_code(element: Any, ns: dict[str, str]) -> str | None:
    return _text(element, "p:StsRsnInf/p:Rsn/p:Cd", ns, max_length=4) or _text(
        element, "p:StsRsnInf/p:Rsn/p:Prtry", ns
    )


def read_status_report(body: bytes) -> dict[str, Any]:
    """Read a pacs.002 (any version) into a plain dict.

    ``{"message_id", "original_message_id", "original_message_name", "group_status",
    "group_reason", "transactions": [{"original_message_id", "original_transaction_id",
    "original_end_to_end_id", "status", "reason"}]}``; absent optional values are None. A
    transaction line without its own original group takes the report's.

    Raises:
        MessageRejected: not a pacs.002, or one without what a status needs (FF01).
    """
    if len(body) > MAX_REPORT_BYTES:
        raise MessageRejected(f"the report exceeds {MAX_REPORT_BYTES} bytes")
    root = parse_hostile(body)
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "Document" or not _ANY_VERSION.fullmatch(namespace):
        raise MessageRejected("the root element must be a pacs.002 Document")
    ns = {"p": namespace}
    report = root.find("p:FIToFIPmtStsRpt", ns)
    if report is None:
        raise MessageRejected("FIToFIPmtStsRpt is missing")
    message_id = _text(report, "p:GrpHdr/p:MsgId", ns)
    group = report.find("p:OrgnlGrpInfAndSts", ns)
    if message_id is None or group is None:
        raise MessageRejected("GrpHdr/MsgId or OrgnlGrpInfAndSts is missing")
    original_message_id = _text(group, "p:OrgnlMsgId", ns)
    if original_message_id is None:
        raise MessageRejected("OrgnlGrpInfAndSts/OrgnlMsgId is missing")
    transactions = []
    for line in report.findall("p:TxInfAndSts", ns):
        status = _status(line, "p:TxSts", ns)
        transaction_id = _text(line, "p:OrgnlTxId", ns)
        if status is None or transaction_id is None:
            raise MessageRejected("TxInfAndSts needs OrgnlTxId and TxSts")
        transactions.append(
            {
                "original_message_id": _text(line, "p:OrgnlGrpInf/p:OrgnlMsgId", ns)
                or original_message_id,
                "original_transaction_id": transaction_id,
                "original_end_to_end_id": _text(line, "p:OrgnlEndToEndId", ns),
                "status": status,
                "reason": _reason_code(line, ns),
            }
        )
    group_status = _status(group, "p:GrpSts", ns)
    if group_status is None and not transactions:
        raise MessageRejected("the report has neither a group status nor a transaction's")
    return {
        "message_id": message_id,
        "original_message_id": original_message_id,
        "original_message_name": _text(group, "p:OrgnlMsgNmId", ns),
        "group_status": group_status,
        "group_reason": _reason_code(group, ns),
        "transactions": transactions,
    }
