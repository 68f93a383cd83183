"""Pure product arithmetic and eligibility: fees, interest, floors. Money in minor units."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from channelhub.cau.errors import ProductNotEligible
from channelhub.cau.schemas import Eligibility, FeeRule, ProductParameters
from channelhub.kit.money import Money

__all__ = ["CustomerFacts", "ProductFacts", "check_eligible", "fee_for", "floor_of", "interest"]

_BPS = 10_000


def _minor(amount: str, currency: str) -> int:
    return Money.parse(amount, currency).minor


def fee_for(rule: FeeRule | None, amount_minor: int, currency: str) -> int:
    """Return the fee on ``amount_minor``: fixed + rate (rounded half up), within min/max."""
    if rule is None:
        return 0
    fee = _minor(rule.fixed, currency) + (amount_minor * rule.rate_bps + _BPS // 2) // _BPS
    fee = max(fee, _minor(rule.minimum, currency))
    if rule.maximum is not None:
        fee = min(fee, _minor(rule.maximum, currency))
    return fee


def interest(principal_minor: int, rate_bps: int, days: int, day_count: int = 365) -> int:
    """Return simple interest on ``principal_minor`` for ``days``, rounded down to the minor
    unit (a bank never pays out a fraction it does not have)."""
    if days <= 0 or rate_bps <= 0 or principal_minor <= 0:
        return 0
    return principal_minor * rate_bps * days // (_BPS * day_count)


def floor_of(parameters: ProductParameters, currency: str) -> int:
    """Return the lowest available balance a debit may leave on an account of the product."""
    overdraft = _minor(parameters.overdraft_limit, currency) if parameters.overdraft_allowed else 0
    return _minor(parameters.minimum_balance, currency) - overdraft


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What eligibility looks at in a customer."""

    kind: str
    segment: str
    kyc_level: int


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """What eligibility looks at in a product."""

    code: str
    status: str
    valid_from: dt.date
    valid_to: dt.date | None
    eligibility: Eligibility


def check_eligible(product: ProductFacts, customer: CustomerFacts, today: dt.date) -> None:
    """Refuse a product that is not on sale today or not open to this customer.

    Raises:
        ProductNotEligible: naming the reason in ``details['reason']``.
    """
    rule = product.eligibility
    reason = None
    if (
        product.status != "active"
        or today < product.valid_from
        or (product.valid_to is not None and today > product.valid_to)
    ):
        reason = "not_on_sale"
    elif rule.segments and customer.segment not in rule.segments:
        reason = "segment"
    elif rule.customer_kinds and customer.kind not in rule.customer_kinds:
        reason = "customer_kind"
    elif customer.kyc_level < rule.min_kyc_level:
        reason = "kyc_level"
    if reason is not None:
        raise ProductNotEligible(
            f"product {product.code} is not available to this customer ({reason})",
            details={"product": product.code, "reason": reason},
        )
