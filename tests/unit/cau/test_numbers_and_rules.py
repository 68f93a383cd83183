"""Check digits, masking, fees, interest and eligibility: pure functions."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.cau.errors import ProductNotEligible
from channelhub.cau.numbers import (
    account_number,
    customer_number,
    luhn_valid,
    mask_email,
    mask_id_number,
    mask_pan,
    mask_phone,
    mod97_valid,
    pan,
)
from channelhub.cau.rules import (
    CustomerFacts,
    ProductFacts,
    check_eligible,
    fee_for,
    floor_of,
    interest,
)
from channelhub.cau.schemas import Eligibility, FeeRule, ProductParameters


def test_the_demo_card_numbers() -> None:
    assert pan(1) == "6234560000000016"
    assert pan(2) == "6234560000000024"
    assert mask_pan(pan(1)) == "623456******0016"


@given(st.integers(min_value=0, max_value=999_999_999))
def test_generated_numbers_carry_valid_check_digits(serial: int) -> None:
    assert luhn_valid(pan(serial))
    assert luhn_valid(customer_number(serial))
    assert mod97_valid(account_number("0101", serial))


@given(st.integers(min_value=0, max_value=999_999_999), st.integers(min_value=0, max_value=15))
def test_one_wrong_digit_is_caught(serial: int, position: int) -> None:
    number = account_number("0101", serial)
    digit = int(number[position])
    changed = number[:position] + str((digit + 1) % 10) + number[position + 1 :]
    assert not mod97_valid(changed)
    card = pan(serial)
    changed = card[:position] + str((int(card[position]) + 1) % 10) + card[position + 1 :]
    assert not luhn_valid(changed)


def test_masks_hide_what_they_must() -> None:
    assert mask_id_number("310101199001011234") == "310***********1234"
    assert mask_id_number("1234") == "****"
    assert mask_phone("+8613800000001") == "**********0001"
    assert mask_email("alice@example.com") == "a***@example.com"


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(100, 200), (1_000_000, 1_000), (100_000_000, 5_000), (2_000_000, 2_000), (2_000_500, 2_001)],
)
def test_fee_rate_within_minimum_and_maximum(amount: int, fee: int) -> None:
    rule = FeeRule(rate_bps=10, minimum="2.00", maximum="50.00")
    assert fee_for(rule, amount, "CNY") == fee


def test_fixed_fee_and_no_rule() -> None:
    assert fee_for(FeeRule(fixed="1.00"), 999_999, "USD") == 100
    assert fee_for(None, 999_999, "USD") == 0


def test_interest_is_rounded_down() -> None:
    assert interest(1_000_000, 175, 365) == 17_500
    assert interest(1_000_000, 175, 1) == 47  # 47.94 -> 47
    assert interest(1_000_000, 175, 0) == 0
    assert interest(1_000_000, 175, 360, day_count=360) == 17_500


def test_floor_from_minimum_balance_and_overdraft() -> None:
    assert floor_of(ProductParameters(), "CNY") == 0
    assert floor_of(ProductParameters(minimum_balance="100.00"), "CNY") == 10_000
    params = ProductParameters(overdraft_allowed=True, overdraft_limit="20000.00")
    assert floor_of(params, "CNY") == -2_000_000


def test_eligibility_reasons() -> None:
    today = dt.date(2026, 11, 25)
    rule = Eligibility(segments=("premier",), customer_kinds=("person",), min_kyc_level=2)
    product = ProductFacts("P", "active", dt.date(2026, 1, 1), dt.date(2026, 12, 31), rule)
    check_eligible(product, CustomerFacts("person", "premier", 2), today)
    for customer, reason in (
        (CustomerFacts("person", "retail", 3), "segment"),
        (CustomerFacts("company", "premier", 3), "customer_kind"),
        (CustomerFacts("person", "premier", 1), "kyc_level"),
    ):
        with pytest.raises(ProductNotEligible) as refused:
            check_eligible(product, customer, today)
        assert refused.value.details["reason"] == reason
    with pytest.raises(ProductNotEligible):
        check_eligible(product, CustomerFacts("person", "premier", 2), dt.date(2027, 1, 1))
