"""The formatters a mapping applies to a value on its way to or from a back end (pure).

Each formatter is a name in the mapping file, the arguments it takes, the type it produces
(so that loading can check it against a fixed record's field) and a function. Amounts go
through ``Money`` — integer minor units inside, a decimal string on the wire, never a float.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from channelhub.kit import iso8583
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money

__all__ = ["FORMATTERS", "FormatArgs", "FormatProblem", "Formatter", "apply"]

#: Crockford's base 32: no I, L, O or U, so a reference read aloud or retyped survives.
_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class FormatProblem(Exception):
    """A value a formatter cannot take; ``code`` is the canonical code to report."""

    def __init__(self, reason: str, code: str = "VALIDATION_FAILED") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class FormatArgs:
    """The arguments of a field's formatters, checked when the mapping loads."""

    #: The currency of an amount, already evaluated for this field.
    currency: Any = None
    pattern: str = "%Y-%m-%d"
    parse: str | None = None
    timezone: ZoneInfo | None = None
    width: int = 0
    fill: str = " "
    align: str = "right"
    length: int = 0
    table: Mapping[str, str] = field(default_factory=dict)
    otherwise: str | None = None


@dataclass(frozen=True, slots=True)
class Formatter:
    """One formatter: its arguments (required ones first), what it yields, its function."""

    name: str
    apply: Callable[[Any, FormatArgs], Any]
    output: type
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


def _currency(args: FormatArgs) -> str:
    if not isinstance(args.currency, str):
        raise FormatProblem("the currency is missing or not a string", "INVALID_AMOUNT")
    return args.currency


def _amount_minor(value: Any, args: FormatArgs) -> int:
    try:
        return Money.parse(value, _currency(args)).minor
    except ChannelhubError as error:
        raise FormatProblem(error.message, error.code) from None


def _amount_decimal(value: Any, args: FormatArgs) -> str:
    if type(value) is not int:
        raise FormatProblem(f"an amount in minor units is an integer, not {_kind(value)}")
    try:
        return Money(value, _currency(args)).to_decimal_string()
    except ChannelhubError as error:
        raise FormatProblem(error.message, error.code) from None


def _iso8583_balance(amount_type: str) -> Callable[[Any, FormatArgs], str]:
    """Read one balance of an ISO 8583 field 54 (additional amounts): ``01`` ledger, ``02``
    available, each 20 characters of account type, amount type, numeric currency, C or D and
    12 digits; returned as a decimal string in that currency."""

    def read(value: Any, args: FormatArgs) -> str:
        found = iso8583.balances_of(_text(value)).get(amount_type)
        if found is None:
            raise FormatProblem(f"field 54 holds no amount of type {amount_type}")
        currency, minor = found
        try:
            return Money(minor, currency).to_decimal_string()
        except ChannelhubError as error:
            raise FormatProblem(error.message, error.code) from None

    return read


def _date(value: Any, args: FormatArgs) -> str:
    text = _text(value)
    try:
        if args.parse is None:
            moment = dt.datetime.fromisoformat(text)
        else:
            moment = dt.datetime.strptime(text, args.parse)  # noqa: DTZ007 - a date, no zone
    except ValueError:
        expected = args.parse or "ISO 8601"
        raise FormatProblem(f"{text[:40]!r} is not a date ({expected})") from None
    if args.timezone is not None and moment.tzinfo is not None:
        moment = moment.astimezone(args.timezone)
    return moment.strftime(args.pattern)


def _upper(value: Any, args: FormatArgs) -> str:
    return _text(value).upper()


def _pad(value: Any, args: FormatArgs) -> str:
    text = _string(value, args)
    if len(text) > args.width:
        raise FormatProblem(f"{len(text)} characters do not fit width {args.width}")
    if args.align == "left":
        return text.ljust(args.width, args.fill)
    return text.rjust(args.width, args.fill)


def _truncate(value: Any, args: FormatArgs) -> str:
    return _text(value)[: args.length]


def _string(value: Any, args: FormatArgs) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FormatProblem(f"expected text or a whole number, not {_kind(value)}")
    return str(value)


def _integer(value: Any, args: FormatArgs) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        if len(value) > 40:
            raise FormatProblem("a number of more than 40 digits")
        return int(value)
    raise FormatProblem(f"expected a whole number, not {_kind(value)}")


def _code(value: Any, args: FormatArgs) -> str:
    key = _string(value, args)
    if key in args.table:
        return args.table[key]
    if args.otherwise is not None:
        return args.otherwise
    raise FormatProblem(f"{key[:40]!r} is not in the field's code table")


def _reference(value: Any, args: FormatArgs) -> str:
    """A UUIDv7 (the transaction id) in ``length`` base-32 characters: its 48-bit time, then
    as many of its 74 random bits as fit (52 in 20 characters), the same every time."""
    try:
        number = uuid.UUID(_text(value)).int
    except ValueError:
        raise FormatProblem("expected a UUID such as the transaction id") from None
    time, rand_a, rand_b = number >> 80, (number >> 64) & 0xFFF, number & (2**62 - 1)
    # 122 bits without the version and variant, which are the same in every UUIDv7.
    significant = (((time << 12) | rand_a) << 62) | rand_b
    bits = significant >> (122 - 5 * args.length)
    return "".join(_BASE32[bits >> (5 * i) & 0x1F] for i in reversed(range(args.length)))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise FormatProblem(f"expected text, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number with a fraction"}.get(
        type(value), "text" if isinstance(value, str) else type(value).__name__
    )


#: Every formatter a mapping may name.
FORMATTERS: dict[str, Formatter] = {
    f.name: f
    for f in (
        Formatter("amount_minor", _amount_minor, int, required=("currency",)),
        Formatter("amount_decimal", _amount_decimal, str, required=("currency",)),
        Formatter("date", _date, str, optional=("pattern", "parse", "timezone")),
        Formatter("upper", _upper, str),
        Formatter("pad", _pad, str, required=("width",), optional=("fill", "align")),
        Formatter("truncate", _truncate, str, required=("length",)),
        Formatter("string", _string, str),
        Formatter("integer", _integer, int),
        Formatter("code", _code, str, required=("table",), optional=("otherwise",)),
        Formatter("reference", _reference, str, optional=("length",)),
        Formatter("iso8583_ledger", _iso8583_balance("01"), str),
        Formatter("iso8583_available", _iso8583_balance("02"), str),
    )
}


def apply(names: tuple[str, ...], value: Any, args: FormatArgs) -> Any:
    """Run ``value`` through the formatters ``names``, in order.

    Raises:
        FormatProblem: a formatter cannot take the value it is given.
    """
    for name in names:
        value = FORMATTERS[name].apply(value, args)
    return value
