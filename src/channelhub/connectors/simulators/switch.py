"""A simulated card switch over ISO 8583, for the demo, tests and benchmarks.

It speaks what the ``iso8583`` connector speaks (``channelhub.kit.iso8583``: pyiso8583's
``default_ascii`` layout behind a 2-byte big-endian length) and answers each request as soon as
it is ready, so answers on one connection may overtake each other; a client matches them by
STAN. It knows a few cards (``seed_cards``), all in CNY:

================  ===========  ==========
card              holder       available
================  ===========  ==========
6230580000000018  ZHANG WEI    50,000.00
6230580000000026  LI NA         1,250.00
6230580000000034  WANG FANG         0.00
================  ===========  ==========

- 0800: 0810 with 39 ``00``.
- 0100 / 0200: processing code 31 (balance) answers ``00`` with field 54; 00 (purchase,
  authorize) and 01 (withdraw) approve with ``00``, an authorization code (field 38) and the
  card's balances after it (field 54), taking the amount off the card, or decline with ``51``
  above the per-transaction ceiling or the card's available amount; ``14`` for a card it does
  not know, ``13`` for a zero amount or another currency, ``12`` for another processing code,
  ``30`` when a field is missing, ``94`` for a request it has already seen. It remembers each
  by terminal (41), STAN (11) and transmission date-time (7).
- 0400 / 0420: reverses the original named by field 90 (MTI, STAN, transmission date-time),
  or, without field 90, the one the same terminal (41) sent with the same retrieval reference
  number (37), putting the amount back; idempotent (``00`` again). An original it never saw
  answers ``25`` and is remembered, so that the original, arriving late, is refused with
  ``94``.

Requests are applied as they arrive, in order; only the answers wait. Faults, at start or at
run time (``set_faults``): ``slow_ms`` delays each answer, ``drop`` applies 0100/0200 requests
but never answers them (the in-doubt case; echo tests and reversals are still answered, as
by a switch that lost one answer), ``garbage`` applies every request and answers bytes that do
not decode, ``down`` closes every connection and refuses new ones, ``reorder`` N holds answers
until N are ready and sends them last first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

import iso8583

from channelhub.connectors.simulators.base import CommonFaults, SimulatedServer, serve_forever
from channelhub.kit import iso8583 as wire
from channelhub.kit.logging import get_logger

__all__ = [
    "DEFAULT_CEILING_MINOR",
    "SwitchCard",
    "SwitchFaults",
    "SwitchRecord",
    "SwitchSimulator",
    "seed_cards",
    "serve_forever",
]

log = get_logger(__name__)

#: The largest amount one request may take, in minor units (5,000.00) unless told otherwise.
DEFAULT_CEILING_MINOR = 500_000
#: A connection may stay silent this long between messages, and take this long over one.
IDLE_SECONDS = 300.0
READ_SECONDS = 10.0
MAX_MESSAGE_BYTES = 4_096
#: What the switch answers in garbage mode: no MTI decodes from it.
GARBAGE = b"\xff" * 24
_ECHOED = ("3", "4", "7", "11", "32", "37", "41", "42", "49", "70", "90")


@dataclass(slots=True)
class SwitchCard:
    """A card the switch knows; ``available`` in minor units of ``currency`` (ISO numeric)."""

    pan: str
    holder: str
    currency: str
    available: int


@dataclass(slots=True)
class SwitchRecord:
    """What the switch remembers of one request, by terminal, STAN and transmission time."""

    terminal: str
    stan: str
    transmission: str
    mti: str
    response_code: str
    pan: str = ""
    amount: int = 0
    #: ``approved``, ``declined`` or ``reversed``.
    status: str = "declined"
    authorization: str = ""


@dataclass(frozen=True, slots=True)
class SwitchFaults(CommonFaults):
    """How the switch misbehaves on purpose."""

    #: Hold answers until this many are ready, then send them last first (0: no holding).
    reorder: int = 0


def seed_cards() -> dict[str, SwitchCard]:
    """Return the switch's deterministic seed cards, by card number."""
    seed = (
        SwitchCard("6230580000000018", "ZHANG WEI", "156", 5_000_000),
        SwitchCard("6230580000000026", "LI NA", "156", 125_000),
        SwitchCard("6230580000000034", "WANG FANG", "156", 0),
    )
    return {card.pan: card for card in seed}


@dataclass(slots=True)
class _Book:
    """The switch's cards and what it has approved (pure: no I/O)."""

    cards: dict[str, SwitchCard]
    ceiling: int
    records: dict[tuple[str, str, str], SwitchRecord] = field(default_factory=dict)
    #: The same records by terminal and retrieval reference number (field 37), when given.
    by_reference: dict[tuple[str, str], SwitchRecord] = field(default_factory=dict)
    authorizations: int = 0

    def process(self, request: dict[str, str]) -> dict[str, str] | None:
        """Apply one request; return its answer, or None for an MTI the switch does not take."""
        mti = request.get("t", "")
        reply = wire.response_mti(mti)
        if reply is None:
            return None
        answer = {"t": reply, **{key: request[key] for key in _ECHOED if key in request}}
        if "11" not in request or "7" not in request:
            answer["39"] = "30"
        elif mti == "0800":
            answer["39"] = "00"
        elif mti in ("0400", "0420"):
            answer["39"] = self._reverse(request)
        else:
            answer.update(self._authorize(request))
        return answer

    def _authorize(self, request: dict[str, str]) -> dict[str, str]:
        key = (request.get("41", ""), request["11"], request["7"])
        reference = (key[0], request["37"]) if "37" in request else None
        if key in self.records or (reference is not None and reference in self.by_reference):
            return {"39": "94"}
        processing = request.get("3", "")[:2]
        record = SwitchRecord(*key, mti=request["t"], response_code="30")
        self.records[key] = record
        if reference is not None:
            self.by_reference[reference] = record
        card = self.cards.get(request.get("2", ""))
        if "2" not in request or "3" not in request:
            return {"39": "30"}
        if card is None:
            record.response_code = "14"
            return {"39": "14"}
        record.pan = card.pan
        if processing == "31":
            record.response_code, record.status = "00", "approved"
            currency = wire.CURRENCIES.get(card.currency, card.currency)
            balances = wire.additional_amounts(
                currency, ledger_minor=card.available, available_minor=card.available
            )
            return {"39": "00", "54": balances}
        if processing not in ("00", "01"):
            record.response_code = "12"
            return {"39": "12"}
        digits = request.get("4", "")
        if len(digits) != 12 or not digits.isdigit():
            return {"39": "30"}
        amount = int(digits)
        if amount == 0 or request.get("49", card.currency) != card.currency:
            record.response_code = "13"
        elif amount > self.ceiling or amount > card.available:
            record.response_code = "51"
        else:
            card.available -= amount
            self.authorizations += 1
            record.amount, record.status = amount, "approved"
            record.response_code = "00"
            record.authorization = f"{self.authorizations % 1_000_000:06d}"
            currency = wire.CURRENCIES.get(card.currency, card.currency)
            balances = wire.additional_amounts(
                currency, ledger_minor=card.available, available_minor=card.available
            )
            return {"39": "00", "38": record.authorization, "54": balances}
        return {"39": record.response_code}

    def _reverse(self, request: dict[str, str]) -> str:
        original = request.get("90", "")
        if not original and "37" in request:
            return self._reverse_by_reference(request.get("41", ""), request["37"])
        if len(original) < 20 or not original[:20].isdigit():
            return "30"
        mti, stan, transmission = original[:4], original[4:10], original[10:20]
        key = (request.get("41", ""), stan, transmission)
        record = self.records.get(key)
        if record is None:
            # Remember it: the original, if still on its way, must not be approved after this.
            self.records[key] = SwitchRecord(*key, mti=mti, response_code="25", status="reversed")
            return "25"
        return self._undo(record)

    def _reverse_by_reference(self, terminal: str, reference: str) -> str:
        """Reverse the original this terminal sent with retrieval reference ``reference``;
        one never seen is remembered, so that it is refused should it still arrive."""
        record = self.by_reference.get((terminal, reference))
        if record is None:
            self.by_reference[(terminal, reference)] = SwitchRecord(
                terminal, "", "", mti="", response_code="25", status="reversed"
            )
            return "25"
        return self._undo(record)

    def _undo(self, record: SwitchRecord) -> str:
        if record.status == "approved":
            self.cards[record.pan].available += record.amount
            record.status = "reversed"
        return "00"


class SwitchSimulator(SimulatedServer[SwitchFaults]):
    """The simulated card switch: an asyncio TCP server over a book of cards."""

    kind = "switch"
    connection_errors = (*SimulatedServer.connection_errors, wire.FrameTooLarge)

    def __init__(
        self,
        cards: dict[str, SwitchCard] | None = None,
        faults: SwitchFaults | None = None,
        *,
        ceiling_minor: int = DEFAULT_CEILING_MINOR,
    ) -> None:
        super().__init__(faults or SwitchFaults())
        self.book = _Book(cards if cards is not None else seed_cards(), ceiling_minor)
        #: The MTIs of the messages received, and the STANs of the answers sent, in order.
        self.received: deque[str] = deque(maxlen=10_000)
        self.answered: deque[str] = deque(maxlen=10_000)

    @property
    def cards(self) -> dict[str, SwitchCard]:
        """Return the switch's cards, by number."""
        return self.book.cards

    def record(self, terminal: str, stan: str, transmission: str) -> SwitchRecord | None:
        """Return what the switch remembers of a request, if anything."""
        return self.book.records.get((terminal, stan, transmission))

    async def set_faults(
        self,
        *,
        slow_ms: int | None = None,
        drop: bool | None = None,
        garbage: bool | None = None,
        down: bool | None = None,
        reorder: int | None = None,
    ) -> SwitchFaults:
        """Change how the switch misbehaves (a value left out stays as it is); return the
        faults now in force."""
        if (slow_ms is not None and slow_ms < 0) or (reorder is not None and reorder < 0):
            raise ValueError("slow_ms and reorder are >= 0")
        return await self._change_faults(
            slow_ms=slow_ms, drop=drop, garbage=garbage, down=down, reorder=reorder
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: list[tuple[str, bytes]] = []
        while True:
            body = await wire.read_frame(
                reader,
                max_bytes=MAX_MESSAGE_BYTES,
                idle_timeout=IDLE_SECONDS,
                read_timeout=READ_SECONDS,
            )
            if body is None or self.faults.down:
                return
            try:
                request = wire.decode(body)
            except wire.Undecodable as error:
                log.info("switch_simulator_undecodable", reason=str(error)[:100])
                return
            mti = request.get("t", "")
            self.received.append(mti)
            answer = self.book.process(request)
            if answer is None:
                log.info("switch_simulator_unknown_mti", mti=mti[:4])
                continue
            if self.faults.drop and mti in ("0100", "0200"):
                continue
            packed = GARBAGE if self.faults.garbage else bytes(iso8583.encode(answer, wire.SPEC)[0])
            held.append((answer.get("11", ""), packed))
            if len(held) < self.faults.reorder:
                continue
            batch, held = held[::-1], []
            send = asyncio.create_task(self._send(writer, batch, self.faults.slow_ms / 1000))
            self._tasks.add(send)
            send.add_done_callback(self._tasks.discard)

    async def _send(
        self, writer: asyncio.StreamWriter, batch: list[tuple[str, bytes]], delay: float
    ) -> None:
        if delay:
            await self._pause(delay)
        if self.faults.down or writer.transport.is_closing():
            return
        for stan, packed in batch:
            writer.write(wire.frame(packed))
            self.answered.append(stan)
        with contextlib.suppress(OSError):
            await writer.drain()
