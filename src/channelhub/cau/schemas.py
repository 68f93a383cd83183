"""The shapes at the center's edge: product parameters and eligibility, as stored and checked.

Money in a product's parameters is a decimal string in the product's currency (an operator
reads and edits it), turned into minor units only where it is used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Eligibility", "FeeRule", "ProductParameters"]

_Strict = ConfigDict(extra="forbid", frozen=True)
_AMOUNT = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,3})?$"


class FeeRule(BaseModel):
    """A fee: a fixed part plus a rate of the amount, kept between a minimum and a maximum."""

    model_config = _Strict

    fixed: str = Field(default="0", pattern=_AMOUNT)
    rate_bps: int = Field(default=0, ge=0, le=10_000)
    minimum: str = Field(default="0", pattern=_AMOUNT)
    maximum: str | None = Field(default=None, pattern=_AMOUNT)


class ProductParameters(BaseModel):
    """What a product's behaviour is driven by."""

    model_config = _Strict

    #: Annual interest rate in basis points (225 = 2.25 %).
    interest_rate_bps: int = Field(default=0, ge=0, le=100_000)
    #: Term deposits: the term, and the rate paid when closed before maturity.
    term_months: int | None = Field(default=None, ge=1, le=600)
    early_withdrawal_rate_bps: int = Field(default=0, ge=0, le=100_000)
    day_count: Literal[360, 365] = 365
    #: The least balance a debit may leave (before any overdraft).
    minimum_balance: str = Field(default="0", pattern=_AMOUNT)
    #: Term deposits: the least amount one may be opened with.
    minimum_amount: str = Field(default="0", pattern=_AMOUNT)
    overdraft_allowed: bool = False
    overdraft_limit: str = Field(default="0", pattern=_AMOUNT)
    #: Fees by service id, e.g. {"transfer.internal": {"fixed": "2.00"}}.
    fees: dict[str, FeeRule] = Field(default_factory=dict)


class Eligibility(BaseModel):
    """Who may hold a product; an empty list means everyone."""

    model_config = _Strict

    segments: tuple[str, ...] = ()
    customer_kinds: tuple[Literal["person", "company"], ...] = ()
    min_kyc_level: int = Field(default=0, ge=0, le=3)
