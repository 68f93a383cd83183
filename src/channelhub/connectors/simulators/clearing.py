"""A simulated clearing house for ISO 20022 credit transfers, for the demo, tests and
benchmarks: the other side of the ``iso20022`` connector.

An aiohttp server: ``POST /pacs.008`` takes a pacs.008.001.08, settles each transaction into
the creditor bank's account it holds and answers a pacs.002.001.10; ``POST /pacs.028`` asks
what became of one transaction and gets that transaction's pacs.002. The seed accounts (held
for the creditor banks, all open unless said otherwise):

===========  ==================  ================  ========  ======
BIC          account             name              currency  state
===========  ==================  ================  ========  ======
BKCHCNBJXXX  6216610100000001    LIU YANG          CNY       open
BKCHCNBJXXX  6216610100000002    SUN LI            CNY       closed
ICBKCNBJXXX  6222020200000001    ZHAO MIN          CNY       open
ICBKCNBJXXX  6222020200000002    HUANG TAO         USD       open
===========  ==================  ================  ========  ======

How a transaction settles (``TxSts`` and its reason, ExternalStatusReason1Code):

- ACSC: a known open account in its currency, at most the ceiling (default 1,000,000.00);
  the amount is credited to it.
- RJCT AC01 no such account at that bank, AC04 the account is closed, AM03 another currency
  than the account's, AM02 above the ceiling, AM09 an amount the currency cannot have (zero,
  too many decimals), MS03 every transaction while ``reject_all`` is on.
- RJCT DUPL: a transaction id seen before with other content, or one a pacs.028 asked about
  before it arrived (as the simulated core refuses an original after its reversal).
- The very same message again (its creation time aside: a sender may build it anew) gets the
  very same pacs.002; the same transaction in another message gets its first status again; a
  message id used again for other content is refused whole (GrpSts RJCT, DUPL).
- A body that is not a pacs.008 (not XML, a DOCTYPE or entity, a missing element) gets HTTP 400
  with a pacs.002 rejecting the whole message (GrpSts RJCT, FF01) when its MsgId could be
  read, else HTTP 400 with a line of text; a body over ``MAX_MESSAGE_BYTES`` gets HTTP 413.

A pacs.028 about a known transaction gets its pacs.002 (ACSC or RJCT as it settled); about one
never seen, RJCT AG09 (PaymentNotReceived), and that id is remembered so the original arriving
late is refused (DUPL).

Faults (``set_faults``, at start or at run time): ``slow_ms`` answers that much later (the
pacs.008 is applied first), ``drop`` applies each pacs.008 and never answers it (the request
is held until the client gives up; pacs.028 are still answered), ``garbage`` applies and
answers bytes that are not XML, ``down`` refuses connections until brought back up on the
same port, ``reject_all`` refuses every transaction (MS03).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from aiohttp import web

from channelhub.connectors.simulators.base import CommonFaults
from channelhub.kit.clock import utc_now
from channelhub.kit.iso20022.pacs002 import (
    GroupStatus,
    TransactionStatus,
    group_status,
    status_report,
)
from channelhub.kit.iso20022.pacs008 import (
    MAX_MESSAGE_BYTES,
    MESSAGE_NAME,
    CreditTransfer,
    CreditTransferMessage,
    normalize_bic,
    parse_credit_transfers,
)
from channelhub.kit.iso20022.pacs028 import read_status_request
from channelhub.kit.iso20022.xml import MessageRejected
from channelhub.kit.logging import get_logger
from channelhub.kit.money import InvalidAmount, Money

__all__ = [
    "CLEARING_BIC",
    "DEFAULT_CEILING",
    "ClearingAccount",
    "ClearingEntry",
    "ClearingFaults",
    "ClearingSimulator",
    "seed_clearing_accounts",
]

log = get_logger(__name__)

#: The clearing house's own BIC, the instructing agent of its reports.
CLEARING_BIC = "CLRHCNBJXXX"
#: The largest amount one transaction may carry unless told otherwise.
DEFAULT_CEILING = "1000000.00"
#: How long a dropped request is held at most, whatever the client does.
HOLD_SECONDS = 300.0
_XML = "application/xml"


@dataclass(slots=True)
class ClearingAccount:
    """A creditor account at another bank; ``credited`` in minor units, since the start."""

    bic: str
    number: str
    name: str
    currency: str
    closed: bool = False
    credited: int = 0


@dataclass(slots=True)
class ClearingEntry:
    """What the clearing house remembers of a transaction id."""

    tx_id: str
    message_id: str
    #: Of everything the transaction said; None for an id only asked about (pacs.028).
    fingerprint: str | None
    status: str
    reason: str | None
    amount: str = ""
    currency: str = ""
    creditor_agent: str = ""
    creditor_account: str = ""
    end_to_end_id: str = ""


@dataclass(frozen=True, slots=True)
class ClearingFaults(CommonFaults):
    """How the clearing house misbehaves on purpose."""

    reject_all: bool = False


def seed_clearing_accounts() -> dict[tuple[str, str], ClearingAccount]:
    """Return the deterministic seed accounts, by (BIC, number)."""
    seed = (
        ClearingAccount("BKCHCNBJXXX", "6216610100000001", "LIU YANG", "CNY"),
        ClearingAccount("BKCHCNBJXXX", "6216610100000002", "SUN LI", "CNY", closed=True),
        ClearingAccount("ICBKCNBJXXX", "6222020200000001", "ZHAO MIN", "CNY"),
        ClearingAccount("ICBKCNBJXXX", "6222020200000002", "HUANG TAO", "USD"),
    )
    return {(account.bic, account.number): account for account in seed}


def _fingerprint(transfer: CreditTransfer) -> str:
    """Return a digest of what a transaction says, whatever its place in its message."""
    said = dataclasses.replace(transfer, index=0)
    return hashlib.sha256(repr(said).encode()).hexdigest()


@dataclass(slots=True)
class _Clearing:
    """The clearing house's accounts, what it settled and what it answered (pure: no I/O)."""

    accounts: dict[tuple[str, str], ClearingAccount]
    ceiling: Decimal
    entries: dict[str, ClearingEntry] = field(default_factory=dict)
    #: Message id -> (fingerprint, the pacs.002 answered).
    reports: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    report_no: int = 0

    def settle(self, message: CreditTransferMessage, *, reject_all: bool) -> bytes:
        # A message sent again may be built again: its creation time does not make it another.
        fingerprint = dataclasses.replace(message, created_at="").fingerprint()
        known = self.reports.get(message.message_id)
        if known is not None and known[0] == fingerprint:
            return known[1]
        if known is not None:
            # Another message under an id already used: refused as a whole, and not kept.
            statuses = [_line(t, "RJCT", "DUPL") for t in message.transactions]
            return self._report(message, statuses, reason="DUPL")
        statuses = [self._transaction(message, t, reject_all) for t in message.transactions]
        report = self._report(message, statuses)
        self.reports[message.message_id] = (fingerprint, report)
        return report

    def _transaction(
        self, message: CreditTransferMessage, transfer: CreditTransfer, reject_all: bool
    ) -> TransactionStatus:
        fingerprint = _fingerprint(transfer)
        seen = self.entries.get(transfer.tx_id)
        if seen is not None:
            if seen.fingerprint == fingerprint:
                return _line(transfer, seen.status, seen.reason)
            return _line(transfer, "RJCT", "DUPL")
        reason = "MS03" if reject_all else self._refusal(transfer)
        entry = ClearingEntry(
            tx_id=transfer.tx_id,
            message_id=message.message_id,
            fingerprint=fingerprint,
            status="RJCT" if reason else "ACSC",
            reason=reason,
            amount=transfer.amount,
            currency=transfer.currency,
            creditor_agent=normalize_bic(transfer.creditor_agent or ""),
            creditor_account=transfer.creditor_account or "",
            end_to_end_id=transfer.end_to_end_id,
        )
        if reason is None:
            account = self.accounts[(entry.creditor_agent, entry.creditor_account)]
            account.credited += Money.parse(transfer.amount, transfer.currency).minor
        self.entries[transfer.tx_id] = entry
        return _line(transfer, entry.status, entry.reason)

    def _refusal(self, transfer: CreditTransfer) -> str | None:
        """Return why the transaction cannot settle, or None when it can."""
        if transfer.creditor_agent is None or transfer.creditor_account is None:
            return "AC01"
        account = self.accounts.get(
            (normalize_bic(transfer.creditor_agent), transfer.creditor_account)
        )
        if account is None:
            return "AC01"
        if account.closed:
            return "AC04"
        if transfer.currency != account.currency:
            return "AM03"
        try:
            minor = Money.parse(transfer.amount, transfer.currency).minor
        except InvalidAmount:
            return "AM09"
        if minor <= 0:
            return "AM09"
        if Decimal(transfer.amount) > self.ceiling:
            return "AM02"
        return None

    def inquire(self, original_message_id: str, tx_id: str) -> ClearingEntry:
        """Return what became of ``tx_id``; one never seen is remembered as not received."""
        entry = self.entries.get(tx_id)
        if entry is None:
            entry = ClearingEntry(tx_id, original_message_id, None, "RJCT", "AG09")
            self.entries[tx_id] = entry
        return entry

    def inquiry_report(self, entry: ClearingEntry, original_message_id: str) -> bytes:
        """Return the pacs.002 answering a pacs.028 about ``entry``: about the message the
        inquiry names (the same transaction may have come again in another one)."""
        line = TransactionStatus(
            end_to_end_id=entry.end_to_end_id or "NOTPROVIDED",
            tx_id=entry.tx_id,
            status=entry.status,
            reason=entry.reason,
        )
        group = GroupStatus(original_message_id, None, None, entry.status)
        return self._document(group, [line], instructed_agent=None)

    def _report(
        self,
        message: CreditTransferMessage,
        statuses: Sequence[TransactionStatus],
        *,
        reason: str | None = None,
    ) -> bytes:
        group = GroupStatus(
            original_message_id=message.message_id,
            original_created_at=message.created_at,
            original_count=message.count,
            status=group_status([s.status for s in statuses]),
            reason=reason,
        )
        return self._document(group, statuses, instructed_agent=message.instructing_agent)

    def rejected(self, rejected: MessageRejected) -> bytes | None:
        """Return the pacs.002 refusing a whole unreadable message, when its id was read."""
        if rejected.message_id is None:
            return None
        group = GroupStatus(rejected.message_id, None, None, "RJCT", "FF01", rejected.detail)
        return self._document(group, [], instructed_agent=None)

    def _document(
        self,
        group: GroupStatus,
        statuses: Sequence[TransactionStatus],
        *,
        instructed_agent: str | None,
    ) -> bytes:
        self.report_no += 1
        return status_report(
            message_id=f"CLRH{self.report_no:012d}",
            created_at=utc_now(),
            group=group,
            transactions=statuses,
            original_message_name=MESSAGE_NAME,
            instructing_agent=CLEARING_BIC,
            instructed_agent=instructed_agent,
        )


def _line(transfer: CreditTransfer, status: str, reason: str | None) -> TransactionStatus:
    return TransactionStatus(
        end_to_end_id=transfer.end_to_end_id,
        tx_id=transfer.tx_id,
        status=status,
        instruction_id=transfer.instruction_id,
        reason=reason,
    )


class ClearingSimulator:
    """The simulated clearing house: an aiohttp server over a book of creditor accounts."""

    kind: ClassVar[str] = "clearing"

    def __init__(
        self,
        accounts: dict[tuple[str, str], ClearingAccount] | None = None,
        faults: ClearingFaults | None = None,
        *,
        ceiling: str = DEFAULT_CEILING,
    ) -> None:
        limit = Decimal(ceiling)
        if not limit.is_finite() or limit <= 0:
            raise ValueError("the ceiling is a positive amount")
        self.faults = faults or ClearingFaults()
        self.clearing = _Clearing(
            accounts if accounts is not None else seed_clearing_accounts(), limit
        )
        #: How many requests the simulator has taken.
        self.requests = 0
        self._address: tuple[str, int] | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def accounts(self) -> dict[tuple[str, str], ClearingAccount]:
        """Return the creditor accounts, by (BIC, number)."""
        return self.clearing.accounts

    @property
    def ceiling(self) -> Decimal:
        """Return the largest amount one transaction may carry."""
        return self.clearing.ceiling

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the simulator listens on (or would, when down)."""
        if self._address is None:
            raise RuntimeError("the simulated clearing house has not started")
        return self._address

    @property
    def url(self) -> str:
        """Return the base URL to give the connector."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def entries_count(self) -> int:
        """Return how many transaction ids the clearing house remembers."""
        return len(self.clearing.entries)

    def entry(self, tx_id: str) -> ClearingEntry | None:
        """Return what the clearing house remembers of ``tx_id``, if anything."""
        return self.clearing.entries.get(tx_id)

    def credited(self, account: str, bic: str | None = None) -> int:
        """Return the minor units credited to ``account`` (at ``bic``, or at any bank)."""
        return sum(
            a.credited
            for a in self.clearing.accounts.values()
            if a.number == account and (bic is None or a.bic == normalize_bic(bic))
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0 picks a free port) and return the address; one
        started ``down`` keeps the address but refuses connections until brought up."""
        await self._listen(host, port)
        if self.faults.down:
            await self._go_down()
        return self.address

    async def set_faults(
        self,
        *,
        slow_ms: int | None = None,
        drop: bool | None = None,
        garbage: bool | None = None,
        down: bool | None = None,
        reject_all: bool | None = None,
    ) -> ClearingFaults:
        """Change how the clearing house misbehaves (a value left out stays as it is); return
        the faults now in force."""
        if slow_ms is not None and slow_ms < 0:
            raise ValueError("slow_ms is >= 0")
        changes: dict[str, Any] = {
            "slow_ms": slow_ms,
            "drop": drop,
            "garbage": garbage,
            "down": down,
            "reject_all": reject_all,
        }
        was_down = self.faults.down
        faults = dataclasses.replace(
            self.faults, **{k: v for k, v in changes.items() if v is not None}
        )
        self.faults = faults
        if faults.down and not was_down:
            await self._go_down()
        elif was_down and not faults.down and self._address is not None:
            await self._listen(*self._address)
        log.info("clearing_simulator_faults", faults=str(faults))
        return faults

    async def close(self) -> None:
        """Stop listening, end held requests and close every connection."""
        self._stopped.set()
        await self._go_down()

    async def _listen(self, host: str, port: int) -> None:
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_post("/pacs.008", self._credit_transfer)
        app.router.add_post("/pacs.028", self._status)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self._address = (str(bound[0]), int(bound[1]))
        log.info("clearing_simulator_listening", host=self._address[0], port=self._address[1])

    async def _go_down(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _body(self, request: web.Request) -> bytes | web.Response:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=f"the body exceeds {MAX_MESSAGE_BYTES} bytes")

    async def _credit_transfer(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            message = parse_credit_transfers(body)
        except MessageRejected as rejected:
            return self._refuse(rejected)
        async with self._lock:
            report = self.clearing.settle(message, reject_all=self.faults.reject_all)
        log.info("clearing_simulator_settled", message_id=message.message_id)
        if self.faults.drop:
            await self._hold(request)
            if request.transport is not None:
                request.transport.abort()  # never answered, even when the simulator closes
        return await self._answer(report)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            inquiry = read_status_request(body)
        except MessageRejected as rejected:
            return self._refuse(rejected)
        async with self._lock:
            entry = self.clearing.inquire(
                inquiry.original_message_id, inquiry.original_transaction_id
            )
            report = self.clearing.inquiry_report(entry, inquiry.original_message_id)
        return await self._answer(report)

    def _refuse(self, rejected: MessageRejected) -> web.Response:
        log.info("clearing_simulator_refused", detail=rejected.detail)
        report = self.clearing.rejected(rejected)
        if report is None:
            return web.Response(status=400, text=f"FF01: {rejected.detail}")
        return web.Response(status=400, body=report, content_type=_XML)

    async def _answer(self, report: bytes) -> web.Response:
        if self.faults.slow_ms:
            await self._pause(self.faults.slow_ms / 1000)
        if self.faults.garbage:
            report = b"\x00\xffthis is not XML\x00"
        return web.Response(body=report, content_type=_XML)

    async def _hold(self, request: web.Request) -> None:
        """Wait until the client gives up on ``request`` (or the simulator closes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_SECONDS):
                while not self._stopped.is_set():
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        return
                    await self._pause(0.05)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the simulator closes meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()
