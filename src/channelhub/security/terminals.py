"""Registered ATMs and POS terminals and their keys. The keys are made and used only by the
security module (ssm.py); this module stores them sealed and hands the ISO 8583 channel the
two checks it needs: is this MAC right, is this PIN block the card's PIN."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.cau import service as cau
from channelhub.kit.clock import utc_now
from channelhub.security import repository
from channelhub.security.audit_trail import record_audit
from channelhub.security.service import SecurityCenter
from channelhub.security.ssm import check_value

__all__ = [
    "TerminalKeys",
    "answer_mac",
    "register_terminal",
    "terminal",
    "verify_card",
    "verify_mac",
    "verify_pin",
]


def _purpose(terminal_id: str, which: str) -> str:
    return f"terminal:{terminal_id}:{which}"


@dataclass(frozen=True, slots=True)
class TerminalKeys:
    """What registering a terminal hands its owner once: the keys to load into it."""

    terminal_id: str
    pin_key: str
    pin_key_check: str
    mac_key: str
    mac_key_check: str


async def register_terminal(
    center: SecurityCenter,
    *,
    terminal_id: str,
    kind: str,
    location: str,
    branch_code: str | None = None,
    merchant_id: str | None = None,
    pin_key: bytes | None = None,
    mac_key: bytes | None = None,
) -> TerminalKeys:
    """Register a terminal with new random keys (or the given ones, for the demo); return
    the keys in clear, once, to be loaded into the terminal.

    Raises:
        ValueError: a malformed terminal id or kind, or a key that is not 16 bytes.
    """
    if len(terminal_id) != 8 or not terminal_id.isascii() or not terminal_id.isalnum():
        raise ValueError("a terminal id is 8 letters or digits (ISO 8583 field 41)")
    if kind not in ("atm", "pos"):
        raise ValueError("a terminal is an atm or a pos")
    keys = {"pin": pin_key or os.urandom(16), "mac": mac_key or os.urandom(16)}
    if any(len(key) != 16 for key in keys.values()):
        raise ValueError("terminal keys are double-length triple-DES keys (16 bytes)")
    now = utc_now()
    async with center.sessions() as session, session.begin():
        await repository.insert_terminal(
            session,
            {
                "terminal_id": terminal_id,
                "kind": kind,
                "merchant_id": merchant_id,
                "branch_code": branch_code,
                "location": location,
                "pin_key_sealed": center.ssm.seal(keys["pin"], _purpose(terminal_id, "pin")),
                "pin_key_check": check_value(keys["pin"]),
                "mac_key_sealed": center.ssm.seal(keys["mac"], _purpose(terminal_id, "mac")),
                "mac_key_check": check_value(keys["mac"]),
                "status": "active",
                "created_at": now,
            },
        )
        await record_audit(
            session,
            action="terminal.register",
            outcome="succeeded",
            actor_kind="system",
            actor_id=None,
            details={"terminal": terminal_id, "kind": kind},
            now=now,
        )
    return TerminalKeys(
        terminal_id,
        keys["pin"].hex().upper(),
        check_value(keys["pin"]),
        keys["mac"].hex().upper(),
        check_value(keys["mac"]),
    )


async def terminal(session: AsyncSession, terminal_id: str) -> Any | None:
    """Return a registered terminal."""
    return await repository.terminal(session, terminal_id)


def verify_mac(center: SecurityCenter, row: Any, data: bytes, mac: str) -> bool:
    """Tell whether ``mac`` is the terminal's retail MAC of ``data``."""
    return center.ssm.mac_matches(row.mac_key_sealed, _purpose(row.terminal_id, "mac"), data, mac)


def answer_mac(center: SecurityCenter, row: Any, data: bytes) -> str:
    """Return the terminal's retail MAC of ``data`` (an answer to the terminal)."""
    return center.ssm.mac(row.mac_key_sealed, _purpose(row.terminal_id, "mac"), data)


def verify_pin(
    center: SecurityCenter, row: Any, pin_block: str, pan: str, check: Callable[[str], bool]
) -> bool:
    """Tell whether the PIN block (under the terminal's PIN key) holds the card's PIN."""
    return center.ssm.pin_matches(
        row.pin_key_sealed, _purpose(row.terminal_id, "pin"), pin_block, pan, check
    )


async def verify_card(
    center: SecurityCenter,
    session: AsyncSession,
    row: Any,
    *,
    data_key: bytes,
    pan: str,
    pin_block: str,
    now: dt.datetime,
    today: dt.date,
) -> cau.CardHolder:
    """Verify a card read at the terminal ``row`` and the PIN block it sent; wrong PINs are
    counted in ``session``, which the caller commits whatever the outcome.

    Raises:
        UnknownCard, CardLost, CardBlocked, CardExpired, PinInvalid, PinTriesExceeded.
    """
    return await cau.authenticate_card(
        session,
        key=data_key,
        pan=pan,
        pin_matches=lambda check: verify_pin(center, row, pin_block, pan, check),
        now=now,
        today=today,
    )
