"""The connector contract: what every outbound adapter offers and the errors it raises.

A connector turns one named operation (``balance``, ``debit``, ``authorize``) with a canonical
request into a call to a back-end system and returns the back end's answer as a mapping. It
knows its wire; it knows nothing of retries or circuit breakers, which governance wraps
around any connector alike (``channelhub.governance.resilience``).

The errors say what a flow must know to end a transaction correctly: whether the back end
was reached at all, and whether its effect may have happened (``in_doubt``). A timeout after
a money-changing request was sent is in doubt: the transaction stays ``in_doubt`` until an
inquiry or a reversal settles it (``as_step_error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from channelhub.kernel.steps import OutcomeUnknown
from channelhub.kit.errors import ChannelhubError

__all__ = [
    "BackendBadResponse",
    "BackendNotConfigured",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "Connector",
    "ConnectorError",
    "Operation",
    "as_step_error",
]


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation a back end offers, and whether sending it twice is harmless.

    Only an idempotent operation (an inquiry, or one the back end de-duplicates by a key the
    request carries) is ever retried; a money-changing one is sent once.
    """

    name: str
    idempotent: bool = False


@runtime_checkable
class Connector(Protocol):
    """An outbound adapter to one back-end system."""

    @property
    def name(self) -> str:
        """The back end's name in settings (``core``, ``switch`` ...)."""
        ...

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Send ``request`` as ``operation`` and return the answer within ``timeout`` seconds.

        Raises:
            BackendTimeout: no answer in time.
            BackendUnavailable: the back end refused the connection or the call.
            BackendBadResponse: the answer could not be understood.
            BackendRejected: the back end understood and refused (a business answer).
            BackendNotConfigured: the back end offers no such operation.
        """
        ...

    async def close(self) -> None:
        """Release the connections; the connector is not used afterwards."""
        ...


class ConnectorError(ChannelhubError):
    """A call to a back end did not give a usable answer.

    ``backend`` and ``operation`` name the call; ``in_doubt`` says the back end may have
    carried the request out (it was sent, and no clear answer came back).
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        operation: str,
        in_doubt: bool = False,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            details={"backend": backend, "operation": operation, **(details or {})},
        )
        self.backend = backend
        self.operation = operation
        self.in_doubt = in_doubt


class BackendTimeout(ConnectorError):
    """No answer within the call's timeout; in doubt unless the operation is idempotent."""

    code = "BACKEND_TIMEOUT"


class BackendUnavailable(ConnectorError):
    """The back end is down, refused the connection, is overloaded, or its circuit is open."""

    code = "BACKEND_UNAVAILABLE"


class BackendBadResponse(ConnectorError):
    """The back end answered something that is not a valid message of its protocol."""

    code = "BACKEND_BAD_RESPONSE"


class BackendRejected(ConnectorError):
    """The back end understood the request and refused it: a business answer, not a fault.

    ``answer`` is the back end's decoded refusal, for a mapping's code table to translate into
    a canonical code; it does not count against the back end's circuit breaker.
    """

    code = "BUSINESS_RULE_VIOLATION"

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        operation: str,
        answer: Mapping[str, Any],
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, backend=backend, operation=operation, details=details)
        self.answer = answer


class BackendNotConfigured(ConnectorError):
    """No back end of this name, an operation the back end does not offer, or a connector
    kind this version does not provide."""

    code = "BACKEND_NOT_CONFIGURED"


def as_step_error(error: ConnectorError) -> ChannelhubError:
    """Return what a flow step should raise for ``error``: the kernel's ``OutcomeUnknown``
    (the transaction stays ``in_doubt``) when the effect may have happened, else the error."""
    if not error.in_doubt:
        return error
    return OutcomeUnknown(error.message, code=error.code, details=error.details)
