"""ISO 8583:1987 on the wire: messages laid out as pyiso8583's ``default_ascii``
specification, each framed by a 2-byte big-endian length prefix, the last field a retail MAC
(field 64, or 128 when the message has a secondary bitmap) when the link signs its messages.

Pure functions only, in the kit because both sides speak it: the ATM and POS channel
(``channelhub.channels.iso8583``: its server and terminal simulator) and the outbound
connector to a card switch (``channelhub.connectors.iso8583``) with its simulated switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, MutableMapping

import iso8583
from iso8583.specs import default_ascii

from channelhub.kit.money import InvalidAmount, Money

__all__ = [
    "CURRENCIES",
    "MAC_LENGTH",
    "SPEC",
    "FormatError",
    "FrameTooLarge",
    "Undecodable",
    "additional_amounts",
    "amount_of",
    "balances_of",
    "currency_of",
    "decode",
    "encode_with_mac",
    "frame",
    "mac_field",
    "mac_input",
    "read_frame",
    "response_mti",
]

SPEC = default_ascii
#: A MAC on the wire: 16 hex digits.
MAC_LENGTH = 16
#: ISO 4217 numeric code (field 49) -> alphabetic code, for the currencies a bank here keeps.
CURRENCIES = {
    "156": "CNY",
    "840": "USD",
    "978": "EUR",
    "344": "HKD",
    "826": "GBP",
    "392": "JPY",
    "702": "SGD",
}
_NUMERIC = {alpha: numeric for numeric, alpha in CURRENCIES.items()}
#: Request MTI -> response MTI.
_RESPONSES = {
    "0100": "0110",
    "0200": "0210",
    "0400": "0410",
    "0420": "0430",
    "0800": "0810",
}


class FormatError(Exception):
    """A decoded message breaks this channel's rules (a field missing, not numeric ...):
    answered with field 39 = 30. Names the field, never echoes its value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field}: {reason}")
        self.field = field
        self.reason = reason


class FrameTooLarge(Exception):
    """A length prefix announces more than the channel accepts."""


class Undecodable(Exception):
    """The bytes of a frame are not a message of this specification."""


def frame(body: bytes) -> bytes:
    """Return ``body`` behind its 2-byte big-endian length prefix."""
    return len(body).to_bytes(2, "big") + body


async def read_frame(
    reader: asyncio.StreamReader,
    *,
    max_bytes: int,
    idle_timeout: float,
    read_timeout: float,
) -> bytes | None:
    """Read one frame's body; None when the peer closed (or went quiet) between frames.

    Raises:
        FrameTooLarge: the prefix announces an empty or too long message.
        TimeoutError: a frame started but did not finish within ``read_timeout``.
        asyncio.IncompleteReadError: the peer closed in the middle of a frame.
    """
    try:
        async with asyncio.timeout(idle_timeout):
            prefix = await reader.readexactly(2)
    except (TimeoutError, asyncio.IncompleteReadError):
        return None
    length = int.from_bytes(prefix, "big")
    if length == 0 or length > max_bytes:
        raise FrameTooLarge(f"a frame of {length} bytes (at most {max_bytes})")
    async with asyncio.timeout(read_timeout):
        return await reader.readexactly(length)


def decode(body: bytes) -> dict[str, str]:
    """Return the fields of a packed message.

    Raises:
        Undecodable: the bytes are not a message (naming the field and position, never data).
    """
    try:
        fields, _ = iso8583.decode(body, SPEC)
    except iso8583.DecodeError as error:
        raise Undecodable(str(error)[:200]) from None
    except KeyError as error:
        # pyiso8583 looks a field up in the specification by the bitmap's word: a secondary
        # bitmap whose first bit announces a third bitmap names fields past 128 (found by
        # fuzzing the codec with atheris).
        raise Undecodable(f"field {str(error)[:8]}: not in the specification") from None
    return fields


def mac_field(fields: Mapping[str, str]) -> str:
    """Return the field that carries a message's MAC: 128 with a secondary bitmap, else 64."""
    secondary = any(key.isdigit() and int(key) > 64 for key in fields)
    return "128" if secondary else "64"


def mac_input(body: bytes) -> bytes:
    """Return what a message's MAC covers: everything after the prefix up to the MAC's data,
    which is the message's last field."""
    return body[:-MAC_LENGTH]


def encode_with_mac(
    fields: MutableMapping[str, str], mac_of: Callable[[bytes], str] | None = None
) -> bytes:
    """Pack ``fields``; with ``mac_of`` (bytes -> 16 hex digits), end it with the MAC of the
    packed message, in field 64 or 128 as the message's fields require.

    Raises:
        iso8583.EncodeError: a field does not fit the specification.
    """
    if mac_of is None:
        packed, _ = iso8583.encode(fields, SPEC)
        return bytes(packed)
    field = mac_field(fields)
    fields.pop("64" if field == "128" else "128", None)
    fields[field] = "0" * MAC_LENGTH
    packed, _ = iso8583.encode(fields, SPEC)
    mac = mac_of(bytes(packed[:-MAC_LENGTH]))
    fields[field] = mac
    packed[-MAC_LENGTH:] = mac.encode("ascii")
    return bytes(packed)


def response_mti(mti: str) -> str | None:
    """Return the answer's MTI to a request this channel takes; None for any other MTI."""
    return _RESPONSES.get(mti)


def amount_of(fields: Mapping[str, str], *, field: str = "4") -> Money:
    """Return the amount of field 4 (12 digits of minor units) in the currency of field 49.

    Raises:
        FormatError: missing or not numeric; a currency this channel does not know.
    """
    currency = currency_of(fields)
    digits = fields.get(field)
    if digits is None:
        raise FormatError(field, "missing")
    if len(digits) != 12 or not digits.isascii() or not digits.isdigit():
        raise FormatError(field, "not 12 digits")
    try:
        return Money(int(digits), currency)
    except InvalidAmount:
        raise FormatError(field, "not an amount in the currency of field 49") from None


def currency_of(fields: Mapping[str, str]) -> str:
    """Return the alphabetic currency code of field 49.

    Raises:
        FormatError: missing, or not a numeric code this channel knows.
    """
    numeric = fields.get("49")
    if numeric is None:
        raise FormatError("49", "missing")
    currency = CURRENCIES.get(numeric)
    if currency is None:
        raise FormatError("49", "not a known ISO 4217 numeric currency code")
    return currency


def additional_amounts(currency: str, *, ledger_minor: int, available_minor: int) -> str:
    """Return field 54: the account's ledger (type 01) and available (type 02) balances, each
    as account type, amount type, currency, sign (C or D) and 12 digits."""
    numeric = _NUMERIC.get(currency, "000")
    parts = []
    for amount_type, minor in (("01", ledger_minor), ("02", available_minor)):
        sign = "C" if minor >= 0 else "D"
        parts.append(f"00{amount_type}{numeric}{sign}{abs(minor):012d}")
    return "".join(parts)


def balances_of(field54: str) -> dict[str, tuple[str, int]]:
    """Return field 54's amounts by amount type ("01" ledger, "02" available): currency
    (alphabetic) and signed minor units. Blocks that do not parse are left out."""
    found: dict[str, tuple[str, int]] = {}
    for offset in range(0, len(field54) - 19, 20):
        block = field54[offset : offset + 20]
        digits, sign = block[8:], block[7]
        if not digits.isdigit() or sign not in "CD":
            continue
        minor = int(digits) * (1 if sign == "C" else -1)
        found[block[2:4]] = (CURRENCIES.get(block[4:7], block[4:7]), minor)
    return found
