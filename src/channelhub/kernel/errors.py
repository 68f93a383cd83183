"""Errors the kernel raises before or around a flow; each carries a catalog code."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "AuthLevelInsufficient",
    "Forbidden",
    "IdempotencyKeyRequired",
    "IdempotencyKeyReused",
    "ServiceNotOnChannel",
    "StepUpRequired",
    "TransactionInProgress",
    "Unauthenticated",
    "UnknownService",
    "ValidationFailed",
]


class UnknownService(ChannelhubError):
    """No published service has this id (and version)."""

    code = "UNKNOWN_SERVICE"


class ServiceNotOnChannel(ChannelhubError):
    """The service exists but is not released on the caller's channel."""

    code = "SERVICE_NOT_ON_CHANNEL"


class ValidationFailed(ChannelhubError):
    """The request does not match the service's input schema; ``details['field']`` says where."""

    code = "VALIDATION_FAILED"


class Unauthenticated(ChannelhubError):
    """The service needs a logged-in principal and the caller is anonymous."""

    code = "UNAUTHENTICATED"


class AuthLevelInsufficient(ChannelhubError):
    """The caller is logged in, but not strongly enough for this service."""

    code = "AUTH_LEVEL_INSUFFICIENT"


class Forbidden(ChannelhubError):
    """The caller lacks a scope the service requires, or may not touch this object."""

    code = "FORBIDDEN"


class IdempotencyKeyRequired(ChannelhubError):
    """The service changes money or state and refuses to run without an idempotency key."""

    code = "IDEMPOTENCY_KEY_REQUIRED"


class IdempotencyKeyReused(ChannelhubError):
    """The channel's idempotency key already names a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class TransactionInProgress(ChannelhubError):
    """The first request with this key has not finished within the wait."""

    code = "TXN_IN_PROGRESS"


class StepUpRequired(ChannelhubError):
    """This transaction needs a fresh second factor bound to it; ``details`` carry the
    challenge to answer and what it binds (service, amount, beneficiary)."""

    code = "STEP_UP_REQUIRED"
