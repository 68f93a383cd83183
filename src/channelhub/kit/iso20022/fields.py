"""The formats of the ISO 20022 data types these messages carry, and the check a builder runs
on every value before it writes it: a value that does not fit is refused naming its field,
so nothing malformed is ever sent.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from channelhub.kit.money import InvalidAmount, minor_units

__all__ = [
    "AMOUNT",
    "BIC",
    "CURRENCY",
    "DATE",
    "InvalidField",
    "check_amount",
    "check_bic",
    "check_date",
    "check_text",
    "iso_time",
]

BIC = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
CURRENCY = re.compile(r"[A-Z]{3}")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# ActiveCurrencyAndAmount: at most 18 digits, 5 of them after the point, never negative.
AMOUNT = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,5}))?")


class InvalidField(ValueError):
    """A value that a message cannot carry; ``field`` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail


def check_text(field: str, value: object, *, max_length: int = 35) -> str:
    """Return ``value`` when it is a string of 1 to ``max_length`` characters that XML can
    carry as it is (no control characters, no leading or trailing blanks)."""
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "a non-empty string is required")
    if len(value) > max_length:
        raise InvalidField(field, f"at most {max_length} characters")
    if value != value.strip() or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidField(field, "no control characters or leading or trailing blanks")
    if "\ufffe" in value or "\uffff" in value:
        raise InvalidField(field, "no non-characters")
    return value


def check_bic(field: str, value: object) -> str:
    """Return ``value`` when it is a BIC (8 or 11 characters)."""
    if not isinstance(value, str) or not BIC.fullmatch(value):
        raise InvalidField(field, "a BIC of 8 or 11 capital letters and digits is required")
    return value


def check_date(field: str, value: object) -> str:
    """Return ``value`` when it is an ISO date (YYYY-MM-DD)."""
    if not isinstance(value, str) or not DATE.fullmatch(value):
        raise InvalidField(field, "a date YYYY-MM-DD is required")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, "not a calendar date") from None
    return value


def check_amount(field: str, value: object, currency: str) -> str:
    """Return ``value`` when it is a decimal string above zero with at most the currency's
    minor digits; never a float."""
    if not isinstance(value, str) or not AMOUNT.fullmatch(value):
        raise InvalidField(field, "a decimal string such as 1250.00 is required")
    try:
        digits = minor_units(currency)
    except InvalidAmount:
        raise InvalidField("currency", "not an ISO 4217 currency code") from None
    _, _, fraction = value.partition(".")
    if len(fraction.rstrip("0")) > digits:
        raise InvalidField(field, f"{currency} has {digits} decimal places")
    if Decimal(value) <= 0:
        raise InvalidField(field, "must be more than zero")
    return value


def iso_time(moment: dt.datetime) -> str:
    """Return ``moment`` as an ISO date and time in UTC, to the second (``...T08:00:00Z``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
