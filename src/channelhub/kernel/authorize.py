"""The kernel's authorization gate: auth level and scopes, checked before any step runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from channelhub.kernel.catalog.compiled import CompiledService
from channelhub.kernel.errors import (
    AuthLevelInsufficient,
    Forbidden,
    StepUpRequired,
    Unauthenticated,
)
from channelhub.kernel.model import Principal, PrincipalKind, TransactionRequest
from channelhub.kit.money import Money

__all__ = [
    "Authorizer",
    "StepUpBinding",
    "StepUpGate",
    "authorize",
    "no_step_up",
    "step_up_binding",
]

#: The hook the security center may replace; it raises to refuse.
Authorizer = Callable[[CompiledService, Principal], None]


def authorize(service: CompiledService, principal: Principal) -> None:
    """Refuse a caller whose authentication is weaker, or whose scopes are fewer, than required.

    Raises:
        Unauthenticated: the service needs a login and the caller is anonymous.
        AuthLevelInsufficient: the caller logged in, but not strongly enough.
        Forbidden: a required scope is missing.
    """
    need = service.definition.auth
    if need.level.rank > principal.auth_level.rank:
        if principal.kind is PrincipalKind.ANONYMOUS:
            raise Unauthenticated(f"{service.id} requires a login")
        raise AuthLevelInsufficient(
            f"{service.id} requires {need.level.value} authentication",
            details={"required": need.level.value},
        )
    missing = sorted(set(need.scopes) - principal.scopes)
    if missing:
        raise Forbidden(
            f"{service.id} requires scope {', '.join(missing)}", details={"scopes": missing}
        )


@dataclass(frozen=True, slots=True)
class StepUpBinding:
    """What a step-up's one-time code confirms: this service, this amount, this beneficiary,
    this request (its idempotency key)."""

    service_id: str
    amount: str | None
    currency: str | None
    beneficiary: str | None
    idempotency_key: str | None

    def as_dict(self) -> dict[str, str | None]:
        """Return the binding as stored with the challenge and shown to the customer."""
        return {
            "service": self.service_id,
            "amount": self.amount,
            "currency": self.currency,
            "beneficiary": self.beneficiary,
            "idempotency_key": self.idempotency_key,
        }


def step_up_binding(
    service: CompiledService,
    request: TransactionRequest,
    amount: Money | None,
    *,
    force: bool = False,
) -> StepUpBinding | None:
    """Return what a customer must confirm with a fresh second factor, or None when this
    call needs no step-up (no rule, not a customer, or an amount within the threshold).

    ``force``: the risk engine demands one whatever the service's rule says.
    """
    rule = service.definition.auth.step_up
    if request.principal.kind is not PrincipalKind.CUSTOMER or (rule is None and not force):
        return None
    needed = force or (rule is not None and rule.always)
    if not needed and rule is not None and amount is not None:
        limit = rule.amount_over.get(amount.currency)
        needed = limit is not None and amount.minor > Money.parse(limit, amount.currency).minor
    if not needed:
        return None
    field = rule.beneficiary if rule is not None else None
    beneficiary = request.payload.get(field) if field else None
    return StepUpBinding(
        service_id=service.id,
        amount=amount.to_decimal_string() if amount is not None else None,
        currency=amount.currency if amount is not None else None,
        beneficiary=str(beneficiary) if beneficiary is not None else None,
        idempotency_key=request.idempotency_key,
    )


class StepUpGate(Protocol):
    """The security center's check of a step-up: it raises to refuse (StepUpRequired with a
    new challenge, or the reason the proof failed) and returns when the proof holds."""

    async def __call__(self, request: TransactionRequest, binding: StepUpBinding) -> None: ...


async def no_step_up(request: TransactionRequest, binding: StepUpBinding) -> None:
    """The gate of a kernel without a security center: a step-up can never be proven."""
    raise StepUpRequired(
        f"{binding.service_id} needs a one-time code and no security center is running"
    )
