"""The ``iso8583`` connector: ISO 8583:1987 over TCP to a card switch (docs/connectors.md).

Persistent connections (reopened when lost), each carrying many requests at once: every
request gets a system trace audit number (field 11) unique among those in flight, and each
answer is matched to its request by it, whatever the order the switch answers in. An idle
connection sends an echo test (0800, network management code 301) every ``keepalive_seconds``;
one left unanswered closes it, so the next call opens a fresh one rather than waiting on a
dead line.

A money-changing request (withdraw, purchase, authorize) whose answer never arrives — no
answer in time, an unreadable one, the connection lost after it went out — may have been
carried out. The connector reverses it by itself: an 0400 carrying the original's MTI, STAN
and transmission date-time in field 90, repeated as 0420 until the switch answers, at most
``reversal_attempts`` times. The call raises the contract's error with ``in_doubt=True`` and
says in ``details["reversal"]`` whether the switch acknowledged the reversal before the call's
deadline (``acknowledged``) or not yet (``pending``: the repeats go on in the background).

Field 39 of an answer is handed back as it came: what a code means is a mapping's business,
not the connector's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import iso8583

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendNotConfigured,
    BackendTimeout,
    BackendUnavailable,
    ConnectorError,
)
from channelhub.connectors.settings import ConnectorSettings
from channelhub.kit import iso8583 as wire
from channelhub.kit.clock import utc_now
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger

__all__ = [
    "OPERATIONS",
    "Iso8583Connector",
    "Iso8583RequestError",
    "Reversal",
    "SwitchOperation",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SwitchOperation:
    """What an operation sends: its MTI, its processing code (field 3), and whether it moves
    money (an unanswered one is in doubt and reversed)."""

    mti: str
    processing_code: str | None = None
    moves_money: bool = False


#: The operations a switch offers, by name.
OPERATIONS: dict[str, SwitchOperation] = {
    "echo": SwitchOperation("0800"),
    "balance": SwitchOperation("0200", "310000"),
    "withdraw": SwitchOperation("0200", "010000", moves_money=True),
    "purchase": SwitchOperation("0200", "000000", moves_money=True),
    "authorize": SwitchOperation("0100", "000000", moves_money=True),
    # Undo an earlier request, named by field 90 or by its retrieval reference number (37):
    # sending it again is harmless, so an unanswered one is not itself reversed.
    "reverse": SwitchOperation("0400"),
}

#: Fields the connector owns: the MTI, the transmission date-time and the STAN it matches
#: answers by, the bitmaps, and the MACs (this link does not sign its messages).
_OWN_FIELDS = frozenset({"t", "p", "1", "7", "11", "64", "65", "128"})
#: Fields of the original a reversal carries again.
_REVERSAL_FIELDS = ("2", "3", "4", "32", "37", "41", "42", "49")
_RESPONSE_CODE = re.compile(r"[0-9A-Z]{2}")
#: Of a money-changing call's timeout, this share (at most ``_REVERSAL_WAIT_MAX`` seconds) is
#: kept for the reversal's acknowledgement when the answer does not come; a call that fails
#: early (the connection lost) waits no longer than that for it either.
_REVERSAL_SHARE = 0.25
_REVERSAL_WAIT_MAX = 1.0
#: A call gives its answer back this much before its deadline, so that a caller enforcing the
#: same deadline (governance's wrapper) gets the connector's error, with its details.
_MARGIN_MAX = 0.05

_Reason = Literal["refused", "connect_timeout", "timeout", "connection_lost", "garbage"]


class Iso8583RequestError(ChannelhubError):
    """A request field does not fit the switch's message (nothing was sent). Names the field,
    never its value."""

    code = "VALIDATION_FAILED"


@dataclass(slots=True)
class Reversal:
    """An unanswered money-changing request and its reversal: an 0400, then 0420 repeats."""

    original_mti: str
    original_stan: str
    original_time: str
    state: Literal["pending", "acknowledged", "abandoned"] = "pending"
    #: Field 39 of the switch's answer to the reversal.
    response_code: str | None = None
    attempts: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class _LinkLost(Exception):
    """The connection closed (or failed) before the answer came."""


class _LinkGarbage(Exception):
    """The switch sent bytes that are not a message: the connection cannot be trusted."""


class _Unanswered(Exception):
    """A message got no usable answer; ``sent`` says whether it left this process."""

    def __init__(self, reason: _Reason, *, sent: bool, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason: _Reason = reason
        self.sent = sent
        self.detail = detail


@dataclass(slots=True)
class _Attempt:
    """How far one message got: stamped (fields 7 and 11) and written."""

    message: dict[str, str]
    sent: bool = False
    answered: bool = False


class _Link:
    """One connection to the switch; answers are matched to requests by STAN."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_bytes: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_bytes = max_bytes
        self.pending: dict[str, asyncio.Future[dict[str, str]]] = {}
        self.last_active = asyncio.get_running_loop().time()
        self.closed = False
        self.reading = asyncio.create_task(self._read())

    @property
    def usable(self) -> bool:
        """Whether requests may still be sent on it."""
        return not (self.closed or self.writer.is_closing())

    def expect(self, stan: str) -> asyncio.Future[dict[str, str]]:
        """Return the future the answer carrying ``stan`` will be set on."""
        waiter: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.pending[stan] = waiter
        return waiter

    def forget(self, stan: str) -> None:
        """Stop waiting for ``stan``'s answer (one arriving later is logged and dropped)."""
        self.pending.pop(stan, None)

    async def send(self, body: bytes) -> None:
        """Write one message behind its length prefix."""
        if not self.usable:
            raise _LinkLost("the connection is closed")
        self.writer.write(wire.frame(body))
        self.last_active = asyncio.get_running_loop().time()
        await self.writer.drain()

    def abort(self, error: Exception | None = None) -> None:
        """Close the connection at once and fail every request waiting on it."""
        self.closed = True
        self.writer.transport.abort()
        failure = error or _LinkLost("the connection was closed")
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(failure)
        self.pending.clear()

    async def _read(self) -> None:
        failure: Exception = _LinkLost("the switch closed the connection")
        try:
            while True:
                body = await wire.read_frame(
                    self.reader, max_bytes=self.max_bytes, idle_timeout=86_400.0, read_timeout=30.0
                )
                if body is None:
                    break
                self.last_active = asyncio.get_running_loop().time()
                answer = wire.decode(body)
                stan = answer.get("11", "")
                if not stan:
                    raise wire.Undecodable("an answer without field 11")
                waiter = self.pending.pop(stan, None)
                if waiter is None:
                    # The answer to a request that timed out (and was reversed): too late.
                    log.warning("iso8583_late_answer", stan=stan, mti=answer.get("t", ""))
                elif not waiter.done():
                    waiter.set_result(answer)
        except (wire.Undecodable, wire.FrameTooLarge) as error:
            failure = _LinkGarbage(str(error)[:200])
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            failure = _LinkLost(str(error) or type(error).__name__)
        finally:
            self.abort(failure)


def _field_value(key: str, value: object) -> str:
    """Return ``value`` as field ``key``'s text: an int is zero-padded to a fixed field's width."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Iso8583RequestError(
            f"field {key}: a text or a whole number, not {type(value).__name__}",
            details={"field": key},
        )
    if isinstance(value, str):
        return value
    if value < 0:
        raise Iso8583RequestError(f"field {key}: negative", details={"field": key})
    spec = wire.SPEC[key]
    return f"{value:0{spec['max_len']}d}" if spec["len_type"] == 0 else str(value)


class Iso8583Connector:
    """Calls a card switch over ISO 8583: one named back end of kind ``iso8583``."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        connections: int = 1,
        keepalive_seconds: float = 60.0,
        echo_timeout_seconds: float = 5.0,
        reversal_attempts: int = 5,
        reversal_interval_seconds: float = 2.0,
        max_message_bytes: int = 65_535,
    ) -> None:
        if connections < 1 or reversal_attempts < 1:
            raise ValueError("at least one connection and one reversal attempt")
        self._name = name
        self.host = host
        self.port = port
        self.keepalive_seconds = keepalive_seconds
        self.echo_timeout_seconds = echo_timeout_seconds
        self.reversal_attempts = reversal_attempts
        self.reversal_interval_seconds = reversal_interval_seconds
        self.max_message_bytes = min(max_message_bytes, 65_535)
        #: How many connections this connector has opened.
        self.opened = 0
        #: Reversals started, most recent last (the last thousand are kept).
        self.reversals: deque[Reversal] = deque(maxlen=1_000)
        self._slots: list[_Link | None] = [None] * connections
        self._connecting = [asyncio.Lock() for _ in range(connections)]
        self._turn = itertools.count()
        self._stan = secrets.randbelow(999_999)
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> Iso8583Connector:
        """Build the connector of back end ``name`` from its settings."""
        if settings.host is None or settings.port is None:
            raise BackendNotConfigured(
                f"back end {name!r} needs host and port", backend=name, operation=""
            )
        return cls(
            name,
            settings.host,
            settings.port,
            connections=settings.pool_size,
            keepalive_seconds=settings.keepalive_seconds,
            reversal_attempts=settings.reversal_attempts,
            reversal_interval_seconds=settings.reversal_interval_ms / 1000,
            max_message_bytes=settings.max_response_bytes,
        )

    @property
    def name(self) -> str:
        """The back end's name in settings."""
        return self._name

    @property
    def connected(self) -> int:
        """Return how many connections to the switch are open."""
        return sum(1 for link in self._slots if link is not None and link.usable)

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Send ``operation`` with ``request``'s fields (ISO field numbers -> values) and return
        the answer's fields, field 39 as the switch gave it.

        Raises:
            BackendNotConfigured: no such operation.
            Iso8583RequestError: a field does not fit (nothing was sent).
            BackendTimeout: no answer in time.
            BackendUnavailable: the switch refused the connection, or lost it mid-call.
            BackendBadResponse: the answer is not a message, or not the answer to this request.
        """
        spec = OPERATIONS.get(operation)
        if spec is None:
            raise BackendNotConfigured(
                f"back end {self.name!r} offers no operation {operation!r}"
                f" (known: {', '.join(sorted(OPERATIONS))})",
                backend=self.name,
                operation=operation,
            )
        if not timeout > 0:
            raise ValueError("a call's timeout is a positive number of seconds")
        attempt = _Attempt(self._message(spec, request))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout - min(_MARGIN_MAX, timeout / 10)
        grace = min(_REVERSAL_WAIT_MAX, timeout * _REVERSAL_SHARE) if spec.moves_money else 0.0
        try:
            answer = await self._exchange(attempt, deadline - grace)
        except _Unanswered as unanswered:
            # The reversal's acknowledgement is awaited at most ``grace``, within the deadline.
            settle_by = min(deadline, loop.time() + grace)
            raise await self._unanswered(operation, spec, attempt, unanswered, settle_by) from None
        except asyncio.CancelledError:
            # The caller gave up (its own deadline): the request may still have been applied.
            if spec.moves_money and attempt.sent and not attempt.answered:
                self._reverse(attempt.message)
            raise
        return {key: value for key, value in answer.items() if key not in ("p", "1")}

    async def close(self) -> None:
        """Close every connection; reversals still repeating are abandoned (and logged)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for index, link in enumerate(self._slots):
            if link is not None:
                link.abort()
                with contextlib.suppress(asyncio.CancelledError):
                    await link.reading
            self._slots[index] = None

    # --- messages ---

    def _message(self, spec: SwitchOperation, request: Mapping[str, Any]) -> dict[str, str]:
        message = {"t": spec.mti}
        if spec.processing_code is not None:
            message["3"] = spec.processing_code
        if spec.mti == "0800":
            message["70"] = "301"
        for raw_key, value in request.items():
            key = str(raw_key)
            if key not in wire.SPEC or not key.isdigit() or key in _OWN_FIELDS:
                raise Iso8583RequestError(
                    f"field {key[:8]!r}: not a field a request may set", details={"field": key[:8]}
                )
            message[key] = _field_value(key, value)
        # Packed once with placeholders so that a field that does not fit is refused here,
        # before a STAN is spent or anything sent.
        self._pack({**message, "7": "0" * 10, "11": "0" * 6})
        return message

    @staticmethod
    def _pack(message: dict[str, str]) -> bytes:
        try:
            packed, _ = iso8583.encode(dict(message), wire.SPEC)
        except iso8583.EncodeError as error:
            raise Iso8583RequestError(
                f"field {error.field}: does not fit the message", details={"field": error.field}
            ) from None
        return bytes(packed)

    def _stamp(self, message: dict[str, str]) -> str:
        """Give ``message`` a STAN no request in flight has, and the transmission time."""
        while True:
            self._stan = self._stan % 999_999 + 1
            stan = f"{self._stan:06d}"
            if stan not in self._in_flight:
                break
        self._in_flight.add(stan)
        message["11"] = stan
        message["7"] = utc_now().strftime("%m%d%H%M%S")
        return stan

    # --- the wire ---

    async def _exchange(
        self, attempt: _Attempt, deadline: float, link: _Link | None = None
    ) -> dict[str, str]:
        """Send ``attempt``'s message and return its answer, by ``deadline`` (loop time).

        Raises:
            _Unanswered: no usable answer, saying why and whether the message went out.
        """
        message = attempt.message
        stan: str | None = None
        try:
            async with asyncio.timeout_at(deadline):
                if link is None:
                    link = await self._link()
                stan = self._stamp(message)
                body = self._pack(message)
                waiter = link.expect(stan)
                # Set before writing: once written, the switch may act on it even if the
                # drain is what fails.
                attempt.sent = True
                await link.send(body)
                answer = await waiter
        except TimeoutError:
            raise _Unanswered(
                "timeout" if attempt.sent else "connect_timeout", sent=attempt.sent
            ) from None
        except (_LinkLost, OSError) as error:
            reason: _Reason = "connection_lost" if attempt.sent else "refused"
            raise _Unanswered(reason, sent=attempt.sent, detail=str(error)[:200]) from None
        except _LinkGarbage as error:
            raise _Unanswered("garbage", sent=True, detail=str(error)) from None
        finally:
            if stan is not None:
                self._in_flight.discard(stan)
                if link is not None:
                    link.forget(stan)
        attempt.answered = True
        expected = wire.response_mti(message["t"])
        if answer.get("t") != expected:
            raise _Unanswered(
                "garbage", sent=True, detail=f"answer MTI {answer.get('t', '')[:4]!r}"
            )
        if not _RESPONSE_CODE.fullmatch(answer.get("39", "")):
            raise _Unanswered("garbage", sent=True, detail="answer without a response code")
        return answer

    async def _link(self) -> _Link:
        """Return an open connection, taking turns among the slots and opening as needed."""
        index = next(self._turn) % len(self._slots)
        link = self._slots[index]
        if link is not None and link.usable:
            return link
        async with self._connecting[index]:
            link = self._slots[index]
            if link is not None and link.usable:
                return link
            if self._closed:
                raise _LinkLost("the connector is closed")
            reader, writer = await asyncio.open_connection(self.host, self.port)
            link = _Link(reader, writer, max_bytes=self.max_message_bytes)
            self.opened += 1
            self._slots[index] = link
            if self.keepalive_seconds > 0:
                self._spawn(self._keep_alive(link))
            return link

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep_alive(self, link: _Link) -> None:
        """Send an echo test whenever ``link`` has been silent ``keepalive_seconds``; close it
        when the switch does not answer one."""
        loop = asyncio.get_running_loop()
        while link.usable:
            silent = loop.time() - link.last_active
            if silent < self.keepalive_seconds:
                await asyncio.sleep(self.keepalive_seconds - silent)
                continue
            echo = _Attempt({"t": "0800", "70": "301"})
            try:
                await self._exchange(echo, loop.time() + self.echo_timeout_seconds, link)
            except _Unanswered as error:
                log.warning("iso8583_keepalive_failed", backend=self.name, reason=error.reason)
                link.abort()

    # --- calls without a usable answer ---

    async def _unanswered(
        self,
        operation: str,
        spec: SwitchOperation,
        attempt: _Attempt,
        unanswered: _Unanswered,
        settle_by: float,
    ) -> ConnectorError:
        """Return the contract's error for a call without a usable answer, reversing the
        request first when it moves money and may have been carried out (and waiting for the
        reversal's acknowledgement until ``settle_by``, loop time)."""
        in_doubt = spec.moves_money and unanswered.sent
        details: dict[str, Any] = {"reason": unanswered.reason}
        if attempt.sent:
            details["stan"] = attempt.message["11"]
        if in_doubt:
            reversal = self._reverse(attempt.message)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(settle_by):
                    await reversal.settled.wait()
            details["reversal"] = reversal.state
            if reversal.response_code is not None:
                details["reversal_response_code"] = reversal.response_code
        where = f"back end {self.name} ({self.host}:{self.port})"
        common: dict[str, Any] = {
            "backend": self.name,
            "operation": operation,
            "in_doubt": in_doubt,
            "details": details,
        }
        if unanswered.reason == "timeout":
            return BackendTimeout(f"{where} did not answer {operation} in time", **common)
        if unanswered.reason == "garbage":
            return BackendBadResponse(
                f"{where} answered {operation} with something unreadable: {unanswered.detail}",
                **common,
            )
        return BackendUnavailable(
            f"{where} is unavailable ({unanswered.reason.replace('_', ' ')})", **common
        )

    def _reverse(self, original: Mapping[str, str]) -> Reversal:
        """Start reversing ``original`` in the background and return its record."""
        reversal = Reversal(original["t"], original["11"], original["7"])
        self.reversals.append(reversal)
        log.warning(
            "iso8583_reversing",
            backend=self.name,
            original_mti=reversal.original_mti,
            original_stan=reversal.original_stan,
        )
        self._spawn(self._send_reversals(original, reversal))
        return reversal

    async def _send_reversals(self, original: Mapping[str, str], reversal: Reversal) -> None:
        """Send an 0400, then 0420 repeats, until the switch answers one or the attempts run
        out."""
        loop = asyncio.get_running_loop()
        carried = {key: original[key] for key in _REVERSAL_FIELDS if key in original}
        field90 = f"{reversal.original_mti}{reversal.original_stan}{reversal.original_time}"
        try:
            for number in range(self.reversal_attempts):
                started = loop.time()
                mti = "0400" if number == 0 else "0420"
                attempt = _Attempt({"t": mti, **carried, "90": field90 + "0" * 22})
                reversal.attempts += 1
                try:
                    answer = await self._exchange(attempt, started + self.reversal_interval_seconds)
                except _Unanswered as error:
                    log.info(
                        "iso8583_reversal_unanswered",
                        backend=self.name,
                        original_stan=reversal.original_stan,
                        attempt=reversal.attempts,
                        reason=error.reason,
                    )
                    await asyncio.sleep(
                        max(0.0, started + self.reversal_interval_seconds - loop.time())
                    )
                    continue
                reversal.state = "acknowledged"
                reversal.response_code = answer["39"]
                log.info(
                    "iso8583_reversal_acknowledged",
                    backend=self.name,
                    original_stan=reversal.original_stan,
                    response_code=reversal.response_code,
                    attempts=reversal.attempts,
                )
                return
            reversal.state = "abandoned"
            log.error(
                "iso8583_reversal_abandoned",
                backend=self.name,
                original_stan=reversal.original_stan,
                attempts=reversal.attempts,
            )
        except asyncio.CancelledError:
            reversal.state = "abandoned"
            log.warning(
                "iso8583_reversal_abandoned_at_close",
                backend=self.name,
                original_stan=reversal.original_stan,
            )
            raise
        finally:
            reversal.settled.set()
