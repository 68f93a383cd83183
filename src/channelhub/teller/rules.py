"""Pure decisions of the teller desk: a teller's authority, and the day's cash position.

No I/O: the amounts come in as integer minor units, the day's bounds as arguments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from channelhub.kit.money import Money

__all__ = ["CASH_IN", "CASH_OUT", "business_day_bounds", "cash_position", "over_authority"]

#: The services whose amounts a teller's cash drawer takes in and pays out.
CASH_IN, CASH_OUT = "cash.deposit", "cash.withdraw"


def over_authority(amount: Money, authority: Mapping[str, int]) -> bool:
    """Tell whether ``amount`` is more than a teller may handle alone; a currency the bank
    set no authority for always needs a supervisor."""
    limit = authority.get(amount.currency)
    return limit is None or amount.minor > limit


def business_day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """Return the UTC instants at which the bank's business day ``day`` starts and ends."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def cash_position(movements: Iterable[tuple[str, str, int]]) -> list[dict[str, object]]:
    """Sum (service, currency, amount in minor units) movements into one line per currency:
    counts and totals taken in and paid out, and the drawer's net change, as decimal strings."""
    sums: dict[str, list[int]] = {}
    for service, currency, minor in movements:
        line = sums.setdefault(currency, [0, 0, 0, 0])
        if service == CASH_IN:
            line[0] += 1
            line[1] += minor
        elif service == CASH_OUT:
            line[2] += 1
            line[3] += minor
    return [
        {
            "currency": currency,
            "deposits": deposits,
            "cash_in": Money(cash_in, currency).to_decimal_string(),
            "withdrawals": withdrawals,
            "cash_out": Money(cash_out, currency).to_decimal_string(),
            "net": Money(cash_in - cash_out, currency).to_decimal_string(),
        }
        for currency, (deposits, cash_in, withdrawals, cash_out) in sorted(sums.items())
    ]
