"""The canonical transaction model every channel turns its wire format into."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from channelhub.kit.money import Money

__all__ = [
    "ANONYMOUS",
    "AuthLevel",
    "Principal",
    "PrincipalKind",
    "StepUpProof",
    "TransactionRequest",
    "TransactionResult",
    "TxnStatus",
]


class TxnStatus(StrEnum):
    """Where a transaction stands; exactly one of the terminal three ends every transaction."""

    RECEIVED = "received"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"
    IN_DOUBT = "in_doubt"
    #: Parked, its money held, until a staff member approves or rejects it (risk review).
    IN_REVIEW = "in_review"

    @property
    def terminal(self) -> bool:
        """Tell whether nothing will change this transaction's outcome any more."""
        return self in (TxnStatus.SUCCEEDED, TxnStatus.FAILED, TxnStatus.REVERSED)

    @property
    def settled(self) -> bool:
        """Tell whether no machine will move this transaction any more: it is terminal, or
        it waits in review for a person."""
        return self.terminal or self is TxnStatus.IN_REVIEW


class AuthLevel(StrEnum):
    """How strongly a principal proved who it is, weakest first."""

    NONE = "none"
    PASSWORD = "password"  # noqa: S105  (an authentication level, not a secret)
    MFA = "mfa"

    @property
    def rank(self) -> int:
        """Return the level's strength, for comparisons."""
        return _AUTH_RANK[self]


_AUTH_RANK = {AuthLevel.NONE: 0, AuthLevel.PASSWORD: 1, AuthLevel.MFA: 2}


class PrincipalKind(StrEnum):
    """What kind of party is calling."""

    ANONYMOUS = "anonymous"
    CUSTOMER = "customer"
    STAFF = "staff"
    PARTNER = "partner"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the security center established it."""

    kind: PrincipalKind
    id: str | None
    auth_level: AuthLevel = AuthLevel.NONE
    scopes: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Return ``kind:id``, the form logs and events carry."""
        return f"{self.kind.value}:{self.id}" if self.id else self.kind.value


ANONYMOUS = Principal(kind=PrincipalKind.ANONYMOUS, id=None)


@dataclass(frozen=True, slots=True)
class StepUpProof:
    """The answer to a step-up challenge: its id and the one-time code (never shown)."""

    challenge: str
    otp: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TransactionRequest:
    """One invocation of a service through a channel, before anything ran."""

    service_id: str
    channel: str
    principal: Principal
    payload: Mapping[str, Any]
    idempotency_key: str | None = None
    service_version: int | None = None
    device_id: str | None = None
    source_address: str | None = None
    locale: str = "en"
    step_up: StepUpProof | None = field(default=None, repr=False)
    #: What a back end may need that is never stored, hashed, logged or echoed: the card
    #: number of a card-present transaction (``pan``), for a switch authorizing it.
    sensitive: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """The canonical outcome a channel encodes onto its wire."""

    txn_id: uuid.UUID
    status: TxnStatus
    code: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    amount: Money | None = None
    replayed: bool = False
    finished_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the transaction succeeded."""
        return self.status is TxnStatus.SUCCEEDED
