"""Pure checks on entries: no I/O, so they are unit- and property-testable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from channelhub.ledger.errors import EntryUnbalanced
from channelhub.ledger.schemas import Leg

__all__ = ["check_balanced", "totals_by_currency"]


def totals_by_currency(legs: Iterable[Leg]) -> dict[str, int]:
    """Return the sum of the legs' signed amounts in each currency."""
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        totals[leg.currency] += leg.amount_minor
    return dict(totals)


def check_balanced(legs: list[Leg]) -> None:
    """Refuse an entry with fewer than two legs, a zero leg, or a currency that does not net
    to zero.

    Raises:
        EntryUnbalanced: naming the currency that does not balance.
    """
    if len(legs) < 2:
        raise EntryUnbalanced("an entry needs at least two legs")
    for leg in legs:
        if type(leg.amount_minor) is not int or leg.amount_minor == 0:
            raise EntryUnbalanced(f"leg on {leg.account} has no amount")
    for currency, total in totals_by_currency(legs).items():
        if total != 0:
            raise EntryUnbalanced(
                f"entry does not balance in {currency}", details={"currency": currency}
            )
