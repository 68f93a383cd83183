"""Money: an integer count of minor units and an ISO 4217 currency. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from channelhub.kit.currencies import MINOR_UNITS
from channelhub.kit.errors import ChannelhubError

__all__ = ["MAX_MINOR", "CurrencyMismatch", "InvalidAmount", "Money", "minor_units"]

# Plain decimal notation only: no exponent, no thousands separator, no sign but a leading minus.
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]+)?")


#: The largest amount a request may carry, in minor units (10 trillion in a currency with two
#: decimals): any sum of such amounts a day brings stays far inside the 64-bit integers the
#: databases keep money in, where a larger one would overflow them.
MAX_MINOR = 10**15


class InvalidAmount(ChannelhubError):
    """An amount or currency that is not valid money."""

    code = "INVALID_AMOUNT"


class CurrencyMismatch(ChannelhubError):
    """Arithmetic or comparison between two currencies."""

    code = "CURRENCY_MISMATCH"


def minor_units(currency: str) -> int:
    """Return the number of decimal places of ``currency``.

    Raises:
        InvalidAmount: the code is not an active ISO 4217 currency.
    """
    try:
        return MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise InvalidAmount(
            "currency: not an ISO 4217 currency code", details={"field": "currency"}
        ) from None


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency in integer minor units (``Money(125000, "CNY")`` is 1250.00)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True yuan is a bug, not money.
        if type(self.minor) is not int:
            raise InvalidAmount(
                f"money amount must be an integer of minor units, not {type(self.minor).__name__}"
            )
        minor_units(self.currency)

    @classmethod
    def parse(cls, amount: Any, currency: Any) -> Money:
        """Parse a decimal string such as ``"1250.00"`` into Money, exactly.

        Raises:
            InvalidAmount: a float, a malformed string, or more decimals than the currency has.
        """
        if not isinstance(currency, str):
            raise InvalidAmount("currency: must be a string", details={"field": "currency"})
        exponent = minor_units(currency)
        if not isinstance(amount, str):
            raise InvalidAmount(
                'amount must be a decimal string such as "12.50"', details={"field": "amount"}
            )
        if _DECIMAL.fullmatch(amount) is None:
            raise InvalidAmount(
                "amount: must be a plain decimal number such as 12.50", details={"field": "amount"}
            )
        negative = amount.startswith("-")
        whole, _, fraction = amount.lstrip("-").partition(".")
        if len(fraction) > exponent:
            raise InvalidAmount(
                f"amount: {currency} has {exponent} decimal places, not {len(fraction)}",
                details={"field": "amount"},
            )
        minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
        if minor > MAX_MINOR:
            raise InvalidAmount(
                "amount: larger than any amount this platform moves", details={"field": "amount"}
            )
        return cls(-minor if negative else minor, currency)

    def to_decimal_string(self) -> str:
        """Return the amount as the wire shows it: ``"1250.00"``."""
        exponent = minor_units(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), 10**exponent)
        if exponent == 0:
            return f"{sign}{whole}"
        return f"{sign}{whole}.{fraction:0{exponent}d}"

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} with {other.currency}",
                details={"currencies": [self.currency, other.currency]},
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor >= other.minor

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"
