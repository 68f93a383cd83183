"""The shapes at the limits' edge: a limit, the facts of a transaction it is checked
against, a charge on a counter, and the bodies of the self-service and staff requests."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from channelhub.kit.money import InvalidAmount, Money

__all__ = ["Charge", "LimitChangeBody", "LimitDef", "TxnFacts"]

#: Service groups: a limit on ``transfer.outgoing`` governs every service that moves money
#: out of a customer's accounts (the services name their group in ``limits.reserve``).
SERVICE_GROUPS = ("transfer.outgoing",)


@dataclass(frozen=True, slots=True)
class LimitDef:
    """A limit as the engine checks it."""

    id: uuid.UUID
    owner: str
    level: str
    subject: str
    service_group: str
    channel: str
    currency: str
    period: str
    max_amount_minor: int | None
    max_count: int | None
    version: int = 1
    #: ``str(id)``, made once: every charge's counter key and step-log entry names it.
    id_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_text", str(self.id))

    @classmethod
    def of(cls, row: Any) -> LimitDef:
        """Return the limit a ``limit_definitions`` row holds."""
        return cls(
            id=row.id,
            owner=row.owner,
            level=row.level,
            subject=row.subject,
            service_group=row.service_group,
            channel=row.channel,
            currency=row.currency,
            period=row.period,
            max_amount_minor=row.max_amount_minor,
            max_count=row.max_count,
            version=row.version,
        )


@dataclass(frozen=True, slots=True)
class TxnFacts:
    """What decides which limits apply to a transaction, and what it books on them."""

    #: The service id and the groups it belongs to.
    groups: frozenset[str]
    channel: str
    currency: str
    amount_minor: int
    customer_id: str
    segment: str | None = None
    account: str | None = None
    card: str | None = None


@dataclass(frozen=True, slots=True)
class Charge:
    """What one transaction books on one limit's counter for one period."""

    limit: LimitDef
    subject: str
    bucket: str
    amount_minor: int
    count: int
    expires_on: dt.date

    @property
    def key(self) -> tuple[str, str, str]:
        """Return the counter's identity: limit, counted subject, period."""
        return self.limit.id_text, self.subject, self.bucket

    def as_dict(self) -> dict[str, Any]:
        """Return the charge as the step log keeps it, for ``limits.release``."""
        return {
            "limit": self.limit.id_text,
            "subject": self.subject,
            "bucket": self.bucket,
            "amount_minor": self.amount_minor,
            "count": self.count,
        }


class LimitChangeBody(BaseModel):
    """A staff member's request to set or retire a bank limit (four-eyes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set", "retire"] = "set"
    level: Literal["global", "channel", "segment", "customer", "account", "card"]
    subject: str = Field(default="", max_length=64)
    scope: str = Field(min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_.]*$")
    channel: Literal["all", "mobile", "web", "teller", "atm", "pos", "partner", "interbank"] = "all"
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    period: Literal["transaction", "daily", "monthly"]
    amount: str | None = Field(default=None, max_length=24)
    count: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> LimitChangeBody:
        if self.amount is not None:
            try:
                minor = Money.parse(self.amount, self.currency).minor
            except InvalidAmount as error:
                raise ValueError(f"amount: {error.message}") from None
            if minor < 0:
                raise ValueError("amount: must not be negative")
        if self.action == "set" and self.amount is None and self.count is None:
            raise ValueError("a limit needs an amount, a count or both")
        targeted = self.level not in ("global", "channel")
        if targeted != bool(self.subject):
            raise ValueError(f"a {self.level} limit {'names' if targeted else 'has no'} subject")
        if self.level == "channel" and self.channel == "all":
            raise ValueError("a channel limit names its channel")
        if self.period == "transaction" and self.count is not None:
            raise ValueError("a per-transaction limit has no count")
        return self

    @property
    def amount_minor(self) -> int | None:
        """Return the amount in minor units (checked at validation)."""
        return None if self.amount is None else Money.parse(self.amount, self.currency).minor
