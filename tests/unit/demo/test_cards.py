"""The demo's cards expire five years after issue, in the month of issue (YYMM), whatever the
day: a card issued on 29 February made the seed fail before."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from channelhub.demo.bank import card_expiry


def test_a_card_issued_on_a_leap_day_expires_in_february() -> None:
    assert card_expiry(dt.date(2028, 2, 29)) == "3302"


def test_a_card_expires_at_the_turn_of_the_century_as_yymm() -> None:
    assert card_expiry(dt.date(2096, 12, 31)) == "0112"


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2094, 12, 31)))
def test_any_issue_date_gives_the_month_of_issue_five_years_on(issued: dt.date) -> None:
    expiry = card_expiry(issued)
    assert expiry == f"{issued.year + 5 - 2000:02d}{issued.month:02d}"
