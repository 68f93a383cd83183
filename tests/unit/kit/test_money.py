"""Money: integer minor units inside, exact decimal strings outside, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.kit.currencies import MINOR_UNITS
from channelhub.kit.money import MAX_MINOR, CurrencyMismatch, InvalidAmount, Money

currencies = st.sampled_from(sorted(MINOR_UNITS))
minor = st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR)


@given(minor, currencies)
def test_decimal_string_round_trips_exactly(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert Money.parse(money.to_decimal_string(), currency) == money


@given(minor, currencies)
def test_decimal_string_has_the_currency_exponent(amount: int, currency: str) -> None:
    text = Money(amount, currency).to_decimal_string()
    exponent = MINOR_UNITS[currency]
    assert Decimal(text) == Decimal(amount).scaleb(-exponent)
    assert ("." in text) == (exponent > 0)
    if exponent:
        assert len(text.split(".")[1]) == exponent


@given(minor, minor, currencies)
def test_addition_and_subtraction_are_exact(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y).minor == a + b
    assert (x + y - y) == x
    assert -x + x == Money(0, currency)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1250.00", "CNY", 125000),
        ("0.5", "USD", 50),
        ("7", "JPY", 7),
        ("1.234", "KWD", 1234),
        ("-3.10", "EUR", -310),
        ("0", "CNY", 0),
    ],
)
def test_parse_worked_examples(text: str, currency: str, minor: int) -> None:
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    "amount",
    [
        12.5,
        1,
        None,
        True,
        "1e3",
        "1,000.00",
        " 1.00",
        "1.",
        ".5",
        "01.00",
        "1.001",
        "+1",
        "NaN",
        "Infinity",
        "1" * 30,
        "１２",
    ],
)
def test_parse_refuses_what_is_not_plain_decimal(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(amount, "CNY")


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10000000000000.01", "CNY"), ("-10000000000000.01", "CNY"), ("1000000000000.001", "KWD")],
)
def test_parse_refuses_amounts_past_the_largest(amount: str, currency: str) -> None:
    # Well-formed, but past what 64-bit money columns hold once summed: refused, not stored.
    with pytest.raises(InvalidAmount, match="larger than"):
        Money.parse(amount, currency)
    assert Money.parse(Money(MAX_MINOR, currency).to_decimal_string(), currency).minor == MAX_MINOR


@pytest.mark.parametrize("currency", ["cny", "XXX", "", None, 156, "CNYY"])
def test_unknown_currency_is_refused(currency: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse("1.00", currency)


def test_float_and_bool_minor_units_are_refused() -> None:
    with pytest.raises(InvalidAmount):
        Money(12.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(True, "CNY")


def test_float_arithmetic_is_refused() -> None:
    with pytest.raises(TypeError):
        Money(100, "CNY") + 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money(100, "CNY") * 2  # type: ignore[operator]


def test_currencies_never_mix() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "CNY") + Money(100, "USD")
    with pytest.raises(CurrencyMismatch):
        assert Money(100, "CNY") < Money(100, "USD")
