"""From one ISO 8583 request to its answer.

The terminal is authenticated by its MAC and the card by its PIN (the security center's
terminal checks); the message then becomes one canonical transaction, whose idempotency key
is the terminal, the STAN and the transmission date-time, so a repeated message is never
executed twice; the result's canonical code becomes field 39 through the error-code catalog.
Nothing here touches an account: the services do, through the kernel.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583

from channelhub.channels.iso8583.metrics import MESSAGE_SECONDS, MESSAGES, REFUSED
from channelhub.kernel import (
    AuthLevel,
    Principal,
    PrincipalKind,
    TransactionEngine,
    TransactionRequest,
    TransactionResult,
    lookup,
)
from channelhub.kernel.errors import Unauthenticated, UnknownService
from channelhub.kit import iso8583 as codec
from channelhub.kit.clock import business_date, utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money
from channelhub.security import terminals
from channelhub.security.service import SecurityCenter

__all__ = ["FINANCIAL_SERVICES", "MacInvalid", "MessageProcessor", "idempotency_key"]

log = get_logger(__name__)

#: Processing code (first two digits of field 3) of an 0200 -> the service it invokes.
FINANCIAL_SERVICES = {
    "01": "cash.withdraw",
    "31": "account.balance",
    "00": "card.purchase",
    "40": "transfer.own",
}
_AUTHORIZATIONS = {"00": "card.authorize"}
_REVERSAL = "card.reverse"
#: Fields an answer repeats from its request. Never the card number (2, 35) or the PIN (52).
_ECHO = ("3", "4", "7", "11", "12", "13", "22", "32", "37", "41", "42", "49", "90", "102", "103")
#: What a card with its PIN may read, like the customer's own login.
_CARD_SCOPES = frozenset({"accounts:read"})


class MacInvalid(ChannelhubError):
    """The message's MAC is missing or not the terminal's MAC of it."""

    code = "MAC_INVALID"


class PartialReversal(ChannelhubError):
    """A reversal naming a replacement amount (field 95): answered 12, nothing moves."""

    code = "BUSINESS_RULE_VIOLATION"


class MalformedMessage(ChannelhubError):
    """A field of a decoded message is missing or malformed (field 39 = 30)."""

    code = "MALFORMED_REQUEST"


@dataclass(frozen=True, slots=True)
class _Terminal:
    terminal_id: str
    channel: str
    branch: str
    merchant: str
    row: Any
    loaded_at: float


def idempotency_key(terminal_id: str, stan: str, transmitted: str) -> str:
    """Return the kernel idempotency key of a terminal's message: terminal, STAN and
    transmission date-time (fields 41, 11 and 7)."""
    return f"{terminal_id}:{stan}:{transmitted}"


class MessageProcessor:
    """Answers ISO 8583 requests; one per node, shared by every connection."""

    def __init__(
        self,
        *,
        engine: TransactionEngine,
        security: SecurityCenter,
        data_key: bytes,
        terminal_seconds: float = 10.0,
    ) -> None:
        self.engine = engine
        self.security = security
        self.data_key = data_key
        #: How long a terminal's row is trusted before it is read again (a suspension or a
        #: new key takes effect within this time).
        self.terminal_seconds = terminal_seconds
        self._terminals: dict[str, _Terminal] = {}

    async def answer(self, body: bytes) -> bytes | None:
        """Return the packed answer to one request; None when the bytes are no request at
        all (the connection is then closed)."""
        started = time.perf_counter()
        try:
            fields = codec.decode(body)
        except codec.Undecodable as error:
            # pyiso8583's message names the field and position, never the data.
            log.info("iso8583_undecodable", reason=str(error)[:200])
            REFUSED.labels("undecodable").inc()
            return None
        mti = fields.get("t", "")
        reply_mti = codec.response_mti(mti) or _reply_to_unknown(mti)
        if reply_mti is None:
            REFUSED.labels("not_a_request").inc()
            return None
        reply = {"t": reply_mti, **{key: fields[key] for key in _ECHO if key in fields}}
        terminal = await self._terminal(fields.get("41"))
        try:
            code = await self._process(mti, fields, body, terminal, reply)
        except codec.FormatError as error:
            log.info("iso8583_format_error", field=error.field, reason=error.reason, mti=mti)
            code = "MALFORMED_REQUEST"
        except ChannelhubError as error:
            code = error.code
        except Exception:  # a bug must cost one answer (96), never the connection
            log.exception("iso8583_failed", mti=mti)
            code = "INTERNAL_ERROR"
        reply["39"] = lookup(code).iso8583
        # An answer is MAC'd only when its request carried a MAC that verified: an echo may
        # come without one, and MAC'ing what an unauthenticated sender chose would make the
        # node a signing oracle for the terminal's key.
        signed = codec.mac_field(fields) in fields and code != MacInvalid.code
        packed = self._pack(reply, terminal if signed else None)
        label = mti if codec.response_mti(mti) else "other"  # bounded: no label per junk MTI
        MESSAGES.labels(label, reply["39"]).inc()
        MESSAGE_SECONDS.labels(label).observe(time.perf_counter() - started)
        return packed

    def _pack(self, reply: dict[str, str], terminal: _Terminal | None) -> bytes:
        mac_of = None
        if terminal is not None:
            row = terminal.row

            def mac_of(data: bytes) -> str:
                return terminals.answer_mac(self.security, row, data)

        try:
            return codec.encode_with_mac(reply, mac_of)
        except iso8583.EncodeError:  # an echoed field that decoded but cannot go back out
            log.exception("iso8583_answer_unencodable")
            minimal = {"t": reply["t"], "39": lookup("MALFORMED_REQUEST").iso8583}
            for key in ("11", "41"):
                if key in reply:
                    minimal[key] = reply[key]
            return codec.encode_with_mac(minimal, mac_of)

    async def _process(
        self,
        mti: str,
        fields: Mapping[str, str],
        body: bytes,
        terminal: _Terminal | None,
        reply: dict[str, str],
    ) -> str:
        """Authenticate, route and execute one request; return its canonical code."""
        if terminal is None:
            raise Unauthenticated("unknown or suspended terminal")
        self._check_mac(fields, body, terminal, required=mti != "0800")
        if codec.response_mti(mti) is None:
            raise MalformedMessage(f"MTI {mti} is not one this channel takes")
        if mti == "0800":
            if "70" in fields:
                reply["70"] = fields["70"]
            return "OK"
        stan = _digits(fields, "11", 6)
        transmitted = _digits(fields, "7", 10)
        key = idempotency_key(terminal.terminal_id, stan, transmitted)
        if mti in ("0400", "0420"):
            return await self._reverse(fields, terminal)
        processing = _digits(fields, "3", 6)
        services = FINANCIAL_SERVICES if mti == "0200" else _AUTHORIZATIONS
        service = services.get(processing[:2])
        if service is None:
            raise UnknownService(f"processing code {processing[:2]} is not offered")
        pan = _pan(fields)
        pin_block = _pin_block(fields)
        amount = codec.amount_of(fields) if service != "account.balance" else None
        if service == "account.balance" and "49" in fields:
            codec.currency_of(fields)
        holder = await self._card(terminal, pan, pin_block)
        payload = _payload(service, fields, holder.account, amount)
        principal = Principal(
            kind=PrincipalKind.TERMINAL,
            id=terminal.terminal_id,
            # The card and its PIN: something the customer has and something they know.
            auth_level=AuthLevel.MFA,
            scopes=_CARD_SCOPES,
            attributes={
                "customer_id": str(holder.customer_id),
                "card_id": str(holder.card_id),
                "terminal": terminal.terminal_id,
                "branch": terminal.branch,
                "merchant": terminal.merchant,
            },
        )
        result = await self.engine.execute(
            TransactionRequest(
                service_id=service,
                channel=terminal.channel,
                principal=principal,
                payload=payload,
                idempotency_key=key,
                # For a card switch the card's service may be routed to; never stored.
                sensitive={"pan": pan},
            )
        )
        if result.ok:
            _approved(result, reply, holder.currency)
        return result.code

    def _check_mac(
        self, fields: Mapping[str, str], body: bytes, terminal: _Terminal, *, required: bool
    ) -> None:
        field = codec.mac_field(fields)
        mac = fields.get(field)
        if mac is None:
            if required:
                raise MacInvalid(f"field {field} (MAC) is missing")
            return
        if not terminals.verify_mac(self.security, terminal.row, codec.mac_input(body), mac):
            log.warning("iso8583_mac_invalid", terminal=terminal.terminal_id)
            raise MacInvalid("the MAC does not match")

    async def _card(self, terminal: _Terminal, pan: str, pin_block: str) -> Any:
        now = utc_now()
        async with self.engine.sessions() as session:
            try:
                holder = await terminals.verify_card(
                    self.security,
                    session,
                    terminal.row,
                    data_key=self.data_key,
                    pan=pan,
                    pin_block=pin_block,
                    now=now,
                    today=business_date(now, self.engine.settings.time_zone),
                )
            except ChannelhubError:
                await session.commit()  # a wrong PIN counts, whatever is answered
                raise
            await session.commit()
            return holder

    async def _reverse(self, fields: Mapping[str, str], terminal: _Terminal) -> str:
        original = fields.get("90")
        if original is None:
            raise codec.FormatError("90", "missing")
        if len(original) != 42 or not original.isdigit():
            raise codec.FormatError("90", "not 42 digits")
        if original[:4] not in ("0100", "0200"):
            raise codec.FormatError("90", "the original MTI is not 0100 or 0200")
        replacement = fields.get("95", "")
        if replacement[:12].strip("0"):
            # A partial reversal (the ATM dispensed part of the amount): reversing the whole
            # would credit cash the customer took. Not supported yet: refused, nothing moves,
            # and the original stands for reconciliation to settle.
            log.warning("iso8583_partial_reversal_refused", terminal=terminal.terminal_id)
            raise PartialReversal("a partial reversal (field 95) is not supported")
        key = idempotency_key(terminal.terminal_id, original[4:10], original[10:20])
        principal = Principal(
            kind=PrincipalKind.TERMINAL,
            id=terminal.terminal_id,
            auth_level=AuthLevel.PASSWORD,  # the terminal's MAC: one factor, no card
            attributes={"terminal": terminal.terminal_id, "branch": terminal.branch},
        )
        result = await self.engine.execute(
            TransactionRequest(
                service_id=_REVERSAL,
                channel=terminal.channel,
                principal=principal,
                payload={"original": key},
                idempotency_key=f"reversal:{key}",
            )
        )
        return result.code

    async def _terminal(self, terminal_id: str | None) -> _Terminal | None:
        if terminal_id is None:
            return None
        now = time.monotonic()
        known = self._terminals.get(terminal_id)
        if known is not None and now - known.loaded_at < self.terminal_seconds:
            return known
        async with self.engine.sessions() as session:
            row = await terminals.terminal(session, terminal_id)
            await session.rollback()
        if row is None or row.status != "active":
            self._terminals.pop(terminal_id, None)
            return None
        loaded = _Terminal(
            terminal_id, row.kind, row.branch_code or "", row.merchant_id or "", row, now
        )
        self._terminals[terminal_id] = loaded
        return loaded


def _reply_to_unknown(mti: str) -> str | None:
    """Return the answer MTI of a request MTI this channel does not take (to say 30)."""
    if len(mti) == 4 and mti.isdigit() and mti[2] in "02468":
        return f"{mti[:2]}{int(mti[2]) + 1}{mti[3]}"
    return None


def _digits(fields: Mapping[str, str], field: str, length: int) -> str:
    value = fields.get(field)
    if value is None:
        raise codec.FormatError(field, "missing")
    if len(value) != length or not value.isascii() or not value.isdigit():
        raise codec.FormatError(field, f"not {length} digits")
    return value


def _pan(fields: Mapping[str, str]) -> str:
    """Return the card number of field 2, or of track 2 (field 35) without it."""
    pan = fields.get("2")
    if pan is None and "35" in fields:
        pan = fields["35"].partition("=")[0].partition("D")[0]
    if pan is None:
        raise codec.FormatError("2", "missing")
    if not (12 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise codec.FormatError("2", "not 12 to 19 digits")
    return pan


def _pin_block(fields: Mapping[str, str]) -> str:
    block = fields.get("52")
    if block is None:
        raise codec.FormatError("52", "missing: this channel needs the PIN")
    try:
        if len(block) != 16 or len(bytes.fromhex(block)) != 8:
            raise ValueError
    except ValueError:
        raise codec.FormatError("52", "not 16 hex digits") from None
    return block


def _account(fields: Mapping[str, str], field: str, default: str | None) -> str:
    number = fields.get(field, default)
    if number is None:
        raise codec.FormatError(field, "missing")
    if not (6 <= len(number) <= 28 and number.isascii() and number.isdigit()):
        raise codec.FormatError(field, "not an account number")
    return number


def _payload(
    service: str, fields: Mapping[str, str], card_account: str, amount: Money | None
) -> dict[str, Any]:
    """Return the service's input: the card's account unless field 102 names another of the
    customer's (which the service checks is theirs)."""
    account = _account(fields, "102", card_account)
    if service == "account.balance":
        return {"account": account}
    assert amount is not None  # every other service has field 4
    money = {"amount": amount.to_decimal_string(), "currency": amount.currency}
    if service == "transfer.own":
        return {"from_account": account, "to_account": _account(fields, "103", None), **money}
    if service in ("card.purchase", "card.authorize") and fields.get("42"):
        return {"account": account, "merchant": fields["42"].strip()[:40], **money}
    return {"account": account, **money}


def _approved(result: TransactionResult, reply: dict[str, str], currency: str) -> None:
    """Add what an approval carries: an authorization code (field 38) and the account's
    balances after it (field 54) when the service reported them."""
    reply["38"] = result.txn_id.hex[-6:].upper()
    data = result.data
    currency = str(data.get("currency") or currency)
    available = data.get("available_balance") or data.get("from_available_balance")
    if available is None:
        return
    try:
        available_minor = Money.parse(str(available), currency).minor
        ledger = data.get("ledger_balance")
        ledger_minor = Money.parse(str(ledger), currency).minor if ledger else available_minor
    except ChannelhubError:
        return
    reply["54"] = codec.additional_amounts(
        currency, ledger_minor=ledger_minor, available_minor=available_minor
    )
