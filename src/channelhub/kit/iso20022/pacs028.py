"""pacs.028.001.03 (FIToFIPaymentStatusRequest): "what became of my transaction?".

The ``iso20022`` connector asks it about one transaction it sent (by the original message id
and transaction id) when a pacs.008 went unanswered; the clearing house answers with that
transaction's pacs.002. Pure: a request in, bytes out, and back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lxml import etree

from channelhub.kit.iso20022.fields import check_bic, check_text, iso_time
from channelhub.kit.iso20022.xml import MessageRejected, parse_hostile

__all__ = [
    "MAX_REQUEST_BYTES",
    "MESSAGE_NAME",
    "NAMESPACE",
    "StatusRequest",
    "build_status_request",
    "read_status_request",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pacs.028.001.03"
MESSAGE_NAME = "pacs.028.001.03"
#: The largest request read; one about a single transaction is about a kilobyte.
MAX_REQUEST_BYTES = 65_536

_NS = {"p": NAMESPACE}


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """A status request about one transaction of an earlier message."""

    message_id: str
    created_at: dt.datetime
    original_message_id: str
    original_transaction_id: str
    #: The earlier message's name: what kind of message it was.
    original_message_name: str = "pacs.008.001.08"
    instructing_agent: str | None = None
    instructed_agent: str | None = None

    def check(self) -> None:
        """Refuse, naming the field, any value the message cannot carry as it is.

        Raises:
            InvalidField: the first value that does not fit.
        """
        for name in ("message_id", "original_message_id", "original_transaction_id"):
            check_text(name, getattr(self, name))
        check_text("original_message_name", self.original_message_name)
        for name in ("instructing_agent", "instructed_agent"):
            if getattr(self, name) is not None:
                check_bic(name, getattr(self, name))


def _put(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
    if text is not None:
        element.text = text
    return element


def build_status_request(request: StatusRequest) -> bytes:
    """Return the pacs.028.001.03 document of ``request``.

    Raises:
        InvalidField: a value the message cannot carry (nothing is built).
    """
    request.check()
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    inquiry = _put(root, "FIToFIPmtStsReq")
    header = _put(inquiry, "GrpHdr")
    _put(header, "MsgId", request.message_id)
    _put(header, "CreDtTm", iso_time(request.created_at))
    for tag, bic in (
        ("InstgAgt", request.instructing_agent),
        ("InstdAgt", request.instructed_agent),
    ):
        if bic is not None:
            _put(_put(_put(header, tag), "FinInstnId"), "BICFI", bic)
    original = _put(inquiry, "OrgnlGrpInf")
    _put(original, "OrgnlMsgId", request.original_message_id)
    _put(original, "OrgnlMsgNmId", request.original_message_name)
    _put(_put(inquiry, "TxInf"), "OrgnlTxId", request.original_transaction_id)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _required(parent: Any, path: str) -> str:
    value = _text(parent, path, required=True)
    assert value is not None  # required=True raises instead
    return value


def _text(parent: Any, path: str, *, required: bool = False) -> str | None:
    found = parent.findall(path, _NS)
    name = path.replace("p:", "")
    if len(found) > 1:
        raise MessageRejected(f"{name} appears more than once")
    if not found:
        if required:
            raise MessageRejected(f"{name} is missing")
        return None
    value = (found[0].text or "").strip()
    if not value or len(value) > 35:
        raise MessageRejected(f"{name} must have 1 to 35 characters")
    return value


def read_status_request(body: bytes) -> StatusRequest:
    """Read a pacs.028.001.03 about one transaction.

    Raises:
        MessageRejected: not such a request (FF01); ``message_id`` is set once it was read.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise MessageRejected(f"the request exceeds {MAX_REQUEST_BYTES} bytes")
    root = parse_hostile(body)
    if root.tag != f"{{{NAMESPACE}}}Document":
        raise MessageRejected(f"the root element must be Document in the {NAMESPACE} namespace")
    inquiry = root.find("p:FIToFIPmtStsReq", _NS)
    if inquiry is None:
        raise MessageRejected("FIToFIPmtStsReq is missing")
    message_id = _required(inquiry, "p:GrpHdr/p:MsgId")
    try:
        created = _required(inquiry, "p:GrpHdr/p:CreDtTm")
        try:
            created_at = dt.datetime.fromisoformat(created)
        except ValueError:
            raise MessageRejected("GrpHdr/CreDtTm is not an ISO date and time") from None
        if len(inquiry.findall("p:TxInf", _NS)) != 1:
            raise MessageRejected("a status request here asks about exactly one TxInf")
        return StatusRequest(
            message_id=message_id,
            created_at=created_at,
            original_message_id=_required(inquiry, "p:OrgnlGrpInf/p:OrgnlMsgId"),
            original_transaction_id=_required(inquiry, "p:TxInf/p:OrgnlTxId"),
            original_message_name=_required(inquiry, "p:OrgnlGrpInf/p:OrgnlMsgNmId"),
            instructing_agent=_text(inquiry, "p:GrpHdr/p:InstgAgt/p:FinInstnId/p:BICFI"),
            instructed_agent=_text(inquiry, "p:GrpHdr/p:InstdAgt/p:FinInstnId/p:BICFI"),
        )
    except MessageRejected as error:
        raise MessageRejected(error.detail, message_id=message_id) from None
