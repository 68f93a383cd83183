"""A sending bank, as docs/interbank.md tells one to behave: builds pacs.008.001.08 messages,
gets a client-credentials token and signs every request with its secret."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
from lxml import etree

from channelhub.channels.iso20022.pacs002 import NAMESPACE as PACS002
from channelhub.channels.iso20022.pacs008 import NAMESPACE as PACS008
from channelhub.demo.identities import (
    DEMO_PARTICIPANT_BIC,
    DEMO_PARTICIPANT_ID,
    DEMO_PARTICIPANT_SECRET,
)
from channelhub.security.signing import sign

__all__ = ["PATH", "Payment", "Report", "SendingBank", "pacs008"]

PATH = "/interbank/v1/pacs.008"
#: The demo bank's BIC (settings.bank.bic's default).
RECEIVER_BIC = "CHUBCNSHXXX"


@dataclass(frozen=True)
class Payment:
    """One CdtTrfTxInf to build."""

    account: str | None
    amount: str
    currency: str = "CNY"
    tx_id: str = field(default_factory=lambda: f"TX{uuid.uuid4().hex[:20]}")
    end_to_end_id: str = field(default_factory=lambda: f"E2E{uuid.uuid4().hex[:20]}")
    debtor: str = "Zhou Wei"
    remittance: str | None = "Invoice 2026-001"
    iban: bool = False


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrib: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{PACS008}}}{tag}", attrib)
    if text is not None:
        element.text = text
    return element


def _agent(parent: etree._Element, tag: str, bic: str) -> None:
    _sub(_sub(_sub(parent, tag), "FinInstnId"), "BICFI", bic)


def _account(parent: etree._Element, tag: str, number: str, *, iban: bool = False) -> None:
    holder = _sub(_sub(parent, tag), "Id")
    if iban:
        _sub(holder, "IBAN", number)
    else:
        _sub(_sub(holder, "Othr"), "Id", number)


def pacs008(
    message_id: str,
    payments: Sequence[Payment],
    *,
    count: int | None = None,
    control_sum: str | None = "auto",
    total: str | None = None,
    instructing: str = DEMO_PARTICIPANT_BIC,
    instructed: str | None = RECEIVER_BIC,
) -> bytes:
    """Return a pacs.008.001.08 with ``payments``; ``control_sum="auto"`` writes the true sum,
    ``count`` and ``total`` override what would be right (for messages that do not add up)."""
    root = etree.Element(f"{{{PACS008}}}Document", nsmap={None: PACS008})
    transfer = _sub(root, "FIToFICstmrCdtTrf")
    header = _sub(transfer, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", "2026-03-02T09:30:00+08:00")
    _sub(header, "NbOfTxs", str(len(payments) if count is None else count))
    if control_sum == "auto":
        control_sum = str(sum((Decimal(p.amount) for p in payments), Decimal(0)))
    if control_sum is not None:
        _sub(header, "CtrlSum", control_sum)
    if total is not None:
        _sub(header, "TtlIntrBkSttlmAmt", total, Ccy=payments[0].currency)
    _sub(header, "IntrBkSttlmDt", "2026-03-02")
    _sub(_sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    _agent(header, "InstgAgt", instructing)
    if instructed is not None:
        _agent(header, "InstdAgt", instructed)
    for payment in payments:
        tx = _sub(transfer, "CdtTrfTxInf")
        ids = _sub(tx, "PmtId")
        _sub(ids, "EndToEndId", payment.end_to_end_id)
        _sub(ids, "TxId", payment.tx_id)
        _sub(tx, "IntrBkSttlmAmt", payment.amount, Ccy=payment.currency)
        _sub(tx, "ChrgBr", "SLEV")
        _sub(_sub(tx, "Dbtr"), "Nm", payment.debtor)
        _account(tx, "DbtrAcct", "6222020200112233")
        _agent(tx, "DbtrAgt", instructing)
        _agent(tx, "CdtrAgt", RECEIVER_BIC)
        _sub(_sub(tx, "Cdtr"), "Nm", "Creditor")
        if payment.account is not None:
            _account(tx, "CdtrAcct", payment.account, iban=payment.iban)
        if payment.remittance:
            _sub(_sub(tx, "RmtInf"), "Ustrd", payment.remittance)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass
class Report:
    """A pacs.002 answer, read."""

    status: int
    document: etree._Element

    def text(self, path: str) -> str | None:
        return self.document.findtext(path, namespaces={"s": PACS002})

    @property
    def message_id(self) -> str | None:
        return self.text("s:FIToFIPmtStsRpt/s:GrpHdr/s:MsgId")

    @property
    def group(self) -> tuple[str | None, str | None]:
        """The group status and its reason code."""
        base = "s:FIToFIPmtStsRpt/s:OrgnlGrpInfAndSts/"
        return self.text(base + "s:GrpSts"), self.text(base + "s:StsRsnInf/s:Rsn/s:Cd")

    @property
    def original_message_id(self) -> str | None:
        return self.text("s:FIToFIPmtStsRpt/s:OrgnlGrpInfAndSts/s:OrgnlMsgId")

    @property
    def transactions(self) -> dict[str, tuple[str | None, str | None, str | None]]:
        """OrgnlTxId -> (TxSts, reason code, AcctSvcrRef); a repeated id keeps the last."""
        ns = {"s": PACS002}
        return {
            str(line.findtext("s:OrgnlTxId", namespaces=ns)): (
                line.findtext("s:TxSts", namespaces=ns),
                line.findtext("s:StsRsnInf/s:Rsn/s:Cd", namespaces=ns),
                line.findtext("s:AcctSvcrRef", namespaces=ns),
            )
            for line in self.document.findall("s:FIToFIPmtStsRpt/s:TxInfAndSts", ns)
        }

    def statuses(self) -> list[tuple[str | None, str | None]]:
        """Each TxInfAndSts's (TxSts, reason), in order."""
        ns = {"s": PACS002}
        return [
            (
                line.findtext("s:TxSts", namespaces=ns),
                line.findtext("s:StsRsnInf/s:Rsn/s:Cd", namespaces=ns),
            )
            for line in self.document.findall("s:FIToFIPmtStsRpt/s:TxInfAndSts", ns)
        ]


class SendingBank:
    """The demo participant bank: its token, and a signed POST of each message."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        *,
        client_id: str = DEMO_PARTICIPANT_ID,
        secret: str = DEMO_PARTICIPANT_SECRET,
    ) -> None:
        self.http, self.base, self.client_id, self.secret = http, base, client_id, secret
        self.token = ""

    async def log_in(self) -> None:
        """Get an access token with the client-credentials grant."""
        basic = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        async with self.http.post(
            self.base + "/oauth/token",
            data="grant_type=client_credentials",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            },
        ) as answer:
            body = await answer.json()
            assert answer.status == 200, body
        self.token = str(body["access_token"])

    def headers(self, body: bytes, *, nonce: str | None = None) -> dict[str, str]:
        """The headers that authenticate and sign ``body`` as this bank."""
        stamp = str(int(time.time()))
        nonce = nonce or uuid.uuid4().hex
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/xml",
            "X-Client-Id": self.client_id,
            "X-Timestamp": stamp,
            "X-Nonce": nonce,
            "X-Signature": sign(self.secret, "POST", PATH, "", stamp, nonce, body),
        }

    async def post(
        self, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        """POST ``body`` with ``headers`` (signed ones by default); return status, type, body."""
        sent = dict(self.headers(body) if headers is None else headers)
        # A file-like body: aiohttp warns about large raw bytes (the oversize test sends some).
        async with self.http.post(self.base + PATH, data=io.BytesIO(body), headers=sent) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), await answer.read()

    async def send(self, body: bytes) -> Report:
        """Send a signed message and read its pacs.002 answer."""
        status, content_type, answer = await self.post(body)
        assert content_type.startswith("application/xml"), (status, answer[:300])
        document = etree.fromstring(answer)
        assert document.tag == f"{{{PACS002}}}Document"
        return Report(status, document)
