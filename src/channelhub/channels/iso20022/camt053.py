"""camt.053.001.08 (BankToCustomerStatement): an account's statement as ISO 20022 XML.

Pure: takes the ``account.statement`` service's answer (all pages of it) and returns the
document's bytes. Amounts are written as the decimal strings the service gives, without their
sign (the sign goes into ``CdtDbtInd``: CRDT money in, DBIT money out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

__all__ = ["NAMESPACE", "statement_document"]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> Any:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attrib)
    if text is not None:
        element.text = text
    return element


def _path(parent: etree._Element, *tags: str, text: str | None = None) -> Any:
    """Make the chain of elements ``tags`` under ``parent``; the last one gets ``text``."""
    for tag in tags[:-1]:
        parent = _sub(parent, tag)
    return _sub(parent, tags[-1], text)


def _amount(parent: etree._Element, signed: str, currency: str) -> None:
    _sub(parent, "Amt", signed.removeprefix("-"), Ccy=currency)
    _sub(parent, "CdtDbtInd", "DBIT" if signed.startswith("-") else "CRDT")


def _ref(value: object) -> str:
    """An id as a reference: ``Max35Text``, so a UUID goes without its hyphens (32)."""
    return str(value).replace("-", "")[:35]


def _balance(parent: etree._Element, code: str, signed: str, currency: str, day: str) -> None:
    balance = _sub(parent, "Bal")
    _path(balance, "Tp", "CdOrPrtry", "Cd", text=code)
    _amount(balance, signed, currency)
    _path(balance, "Dt", "Dt", text=day)


def statement_document(
    statement: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    *,
    message_id: str,
    created_at: dt.datetime,
) -> bytes:
    """Return a camt.053.001.08 document for one account and period.

    ``statement``: the first page of ``account.statement`` (account, currency, from_date,
    to_date, opening_balance, closing_balance); ``entries``: every page's entries, in order.
    """
    currency = str(statement["currency"])
    created = created_at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    message = _sub(root, "BkToCstmrStmt")
    header = _sub(message, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created)
    stmt = _sub(message, "Stmt")
    _sub(stmt, "Id", message_id)
    _sub(stmt, "CreDtTm", created)
    period = _sub(stmt, "FrToDt")
    _sub(period, "FrDtTm", f"{statement['from_date']}T00:00:00")
    _sub(period, "ToDtTm", f"{statement['to_date']}T23:59:59")
    account = _sub(stmt, "Acct")
    _path(account, "Id", "Othr", "Id", text=str(statement["account"]))
    _sub(account, "Ccy", currency)
    _balance(stmt, "OPBD", str(statement["opening_balance"]), currency, statement["from_date"])
    _balance(stmt, "CLBD", str(statement["closing_balance"]), currency, statement["to_date"])
    summary = _sub(stmt, "TxsSummry")
    _path(summary, "TtlNtries", "NbOfNtries", text=str(len(entries)))
    for line in entries:
        entry = _sub(stmt, "Ntry")
        _sub(entry, "NtryRef", _ref(line["entry_id"]))
        _amount(entry, str(line["amount"]), currency)
        _path(entry, "Sts", "Cd", text="BOOK")
        _path(entry, "BookgDt", "DtTm", text=str(line["booked_at"]))
        _path(entry, "ValDt", "Dt", text=str(line["value_date"]))
        _sub(entry, "AcctSvcrRef", _ref(line["txn_id"] or line["entry_id"]))
        _path(entry, "BkTxCd", "Prtry", "Cd", text="TRANSFER")
        details = _path(entry, "NtryDtls", "TxDtls")
        _path(details, "Refs", "AcctSvcrRef", text=_ref(line["entry_id"]))
        if line.get("counterparty"):
            # Money in came from a debtor; money out went to a creditor.
            party = "Cdtr" if str(line["amount"]).startswith("-") else "Dbtr"
            _path(details, "RltdPties", party, "Pty", "Nm", text=str(line["counterparty"])[:140])
        if line.get("description"):
            _path(details, "RmtInf", "Ustrd", text=str(line["description"])[:140])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
