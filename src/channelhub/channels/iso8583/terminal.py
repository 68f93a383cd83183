"""A terminal that speaks the channel's protocol: the ``channelhub atm`` simulator, the tests
and the benchmark all drive the server with it.

It keeps one persistent connection, numbers its messages (STAN, field 11) and stamps them
(transmission date-time, field 7), builds the ISO 9564 format 0 PIN block and encrypts it
under its PIN key (field 52), ends every message with the retail MAC under its MAC key, and
matches answers to requests by STAN, so several requests may be in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from channelhub.kit import iso8583 as codec
from channelhub.kit.clock import utc_now
from channelhub.security.ssm import encrypted_pin_block, retail_mac

__all__ = ["PROCESSING_CODES", "Answer", "Terminal"]

#: What a terminal asks for -> field 3 of an 0200 (an 0100 for ``authorize``).
PROCESSING_CODES = {
    "withdraw": "010000",
    "balance": "310000",
    "purchase": "000000",
    "transfer": "401020",
    "authorize": "000000",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded answer, and whether its MAC is the terminal's MAC of it."""

    fields: dict[str, str]
    mac_ok: bool

    @property
    def code(self) -> str:
        """Return field 39, the response code ("" if missing)."""
        return self.fields.get("39", "")

    @property
    def balances(self) -> dict[str, tuple[str, int]]:
        """Return field 54's balances: "01" ledger, "02" available, as (currency, minor)."""
        return codec.balances_of(self.fields.get("54", ""))


class Terminal:
    """One ATM or POS terminal on one persistent connection."""

    def __init__(
        self,
        terminal_id: str,
        *,
        pin_key: bytes,
        mac_key: bytes,
        merchant: str | None = None,
        stan: int | None = None,
    ) -> None:
        self.terminal_id = terminal_id
        self.pin_key = pin_key
        self.mac_key = mac_key
        self.merchant = merchant
        self._stan = stan if stan is not None else secrets.randbelow(900_000)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Answer]] = {}
        self._listening: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int, *, wait_seconds: float = 10.0) -> None:
        """Open the connection and start reading answers."""
        async with asyncio.timeout(wait_seconds):
            self._reader, self._writer = await asyncio.open_connection(host, port)
        self._listening = asyncio.create_task(self._listen())

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with ConnectionError."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        self._fail_pending()

    async def __aenter__(self) -> Terminal:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    # --- building messages ---

    def next_stan(self) -> str:
        """Return the next system trace audit number (field 11), six digits."""
        self._stan = self._stan % 999_999 + 1
        return f"{self._stan:06d}"

    def message(self, mti: str, fields: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return a request with this terminal's fields 7, 11, 41 (and 42 for a merchant)."""
        now = utc_now()
        message = {
            "t": mti,
            "7": now.strftime("%m%d%H%M%S"),
            "11": self.next_stan(),
            "12": now.strftime("%H%M%S"),
            "13": now.strftime("%m%d"),
            "41": self.terminal_id,
        }
        if self.merchant:
            message["42"] = self.merchant.ljust(15)[:15]
        message.update(fields or {})
        return message

    def financial(
        self,
        action: str,
        *,
        pan: str,
        pin: str,
        amount_minor: int = 0,
        currency: str = "156",
        from_account: str | None = None,
        to_account: str | None = None,
    ) -> dict[str, str]:
        """Return the 0200 (an 0100 for ``authorize``) of ``action``: withdraw, balance,
        purchase, transfer or authorize, with the card's number and its encrypted PIN."""
        fields = {
            "2": pan,
            "3": PROCESSING_CODES[action],
            "4": f"{amount_minor:012d}",
            "22": "051",
            "49": currency,
            "52": encrypted_pin_block(self.pin_key, pin, pan),
        }
        if from_account:
            fields["102"] = from_account
        if to_account:
            fields["103"] = to_account
        return self.message("0100" if action == "authorize" else "0200", fields)

    def reversal(self, original: Mapping[str, str], *, repeat: bool = False) -> dict[str, str]:
        """Return the 0400 (0420 with ``repeat``, as an ATM advises) reversing ``original``:
        field 90 carries its MTI, STAN and transmission date-time."""
        fields = {
            "90": f"{original['t']}{original['11']}{original['7']}" + "0" * 22,
            **{key: original[key] for key in ("2", "3", "4", "49") if key in original},
        }
        return self.message("0420" if repeat else "0400", fields)

    def echo(self) -> dict[str, str]:
        """Return an 0800 echo test (network management code 301)."""
        return self.message("0800", {"70": "301"})

    def pack(self, fields: dict[str, str]) -> bytes:
        """Return ``fields`` packed, ending with this terminal's MAC."""
        return codec.encode_with_mac(fields, lambda data: retail_mac(self.mac_key, data))

    # --- talking to the server ---

    async def send(self, fields: dict[str, str], *, wait_seconds: float = 30.0) -> Answer:
        """Send one request and wait for its answer (matched by STAN)."""
        return await self.send_packed(fields["11"], self.pack(fields), wait_seconds=wait_seconds)

    async def send_packed(self, stan: str, body: bytes, *, wait_seconds: float = 30.0) -> Answer:
        """Send an already packed request (perhaps a broken one) and wait for the answer
        carrying ``stan``.

        Raises:
            ConnectionError: the server closed the connection first.
            TimeoutError: no answer within ``wait_seconds``.
        """
        if self._writer is None:
            raise ConnectionError("not connected")
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[stan] = waiter
        try:
            self._writer.write(codec.frame(body))
            await self._writer.drain()
            async with asyncio.timeout(wait_seconds):
                return await waiter
        finally:
            self._pending.pop(stan, None)

    async def _listen(self) -> None:
        assert self._reader is not None
        try:
            while True:
                body = await codec.read_frame(
                    self._reader, max_bytes=65_535, idle_timeout=86_400.0, read_timeout=60.0
                )
                if body is None:
                    break
                answer = self._answer(body)
                if answer is None:
                    continue
                waiter = self._pending.get(answer.fields.get("11", ""))
                if waiter is None and self._pending:  # no STAN: the oldest request's answer
                    waiter = next(iter(self._pending.values()))
                if waiter is not None and not waiter.done():
                    waiter.set_result(answer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, codec.FrameTooLarge):
            pass
        finally:
            self._fail_pending()

    def _answer(self, body: bytes) -> Answer | None:
        try:
            fields = codec.decode(body)
        except codec.Undecodable:
            return None
        mac = fields.get(codec.mac_field(fields))
        expected = retail_mac(self.mac_key, codec.mac_input(body))
        return Answer(fields, mac is not None and hmac.compare_digest(mac, expected))

    def _fail_pending(self) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the server closed the connection"))
