"""A circuit breaker per back end, on purgatory's state machine.

After ``failure_threshold`` consecutive failures the circuit opens and every call fails fast
with ``BackendUnavailable`` (a 503 without touching the network). After ``recovery_seconds``
one call is let through as a probe while the others keep failing fast; its success closes the
circuit, its failure opens it again for another ``recovery_seconds``.

What counts as a failure is the back end misbehaving: a timeout, a refused connection or a 5xx,
an answer that cannot be understood, an unexpected exception. A business refusal
(``BackendRejected``) or a call the platform itself got wrong (``BackendNotConfigured``) is an
answer, and resets the count like a success. A call cancelled by its caller counts as a failure
(purgatory cannot tell it apart), which errs on the side of cutting a back end off.

purgatory keeps the state in memory here, per node: each node finds out for itself that a back
end is down, within ``failure_threshold`` calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from purgatory import AsyncCircuitBreakerFactory, AsyncInMemoryUnitOfWork
from purgatory.domain.messages.base import Event
from purgatory.domain.model import HALF_OPENED, OPENED, OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendTimeout,
    BackendUnavailable,
)
from channelhub.governance.metrics import BREAKER_STATE, CALLS, STATE_VALUES
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger

__all__ = ["CircuitBreaker"]

log = get_logger(__name__)

T = TypeVar("T")

_FAILURES = (BackendTimeout, BackendUnavailable, BackendBadResponse)


def _is_answer(error: BaseException) -> bool:
    """Tell purgatory which of our errors are answers, not failures of the back end."""
    return not isinstance(error, _FAILURES)


class CircuitBreaker:
    """The circuit breaker of one back end."""

    def __init__(self, backend: str, *, failure_threshold: int, recovery_seconds: float) -> None:
        self.backend = backend
        self.failure_threshold = failure_threshold
        self.recovery_seconds = recovery_seconds
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=recovery_seconds,
            uow=AsyncInMemoryUnitOfWork(),
        )
        self._factory.add_listener(self._on_event)
        self._breaker: AsyncCircuitBreaker | None = None
        self._probing = False
        BREAKER_STATE.labels(backend).set(STATE_VALUES["closed"])

    @property
    def state(self) -> str:
        """Return ``closed``, ``half-opened`` or ``opened``."""
        return "closed" if self._breaker is None else self._breaker.context.state

    async def call(self, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` unless the circuit is open, and count how it ended.

        Raises:
            BackendUnavailable: the circuit is open (or half-open with a probe in flight).
        """
        breaker = await self._get()
        # From here to the probe flag nothing awaits: two calls cannot both become the probe.
        if breaker.context.state == HALF_OPENED and self._probing:
            raise self._open(operation)
        try:
            async with breaker:
                probe = breaker.context.state == HALF_OPENED
                if probe:
                    self._probing = True
                    log.info("backend_probe", backend=self.backend, operation=operation)
                try:
                    return await attempt()
                finally:
                    if probe:
                        self._probing = False
        except OpenedState:
            raise self._open(operation) from None

    async def _get(self) -> AsyncCircuitBreaker:
        if self._breaker is None:
            self._breaker = await self._factory.get_breaker(
                self.backend, exclude=[(ChannelhubError, _is_answer)]
            )
        return self._breaker

    def _open(self, operation: str) -> BackendUnavailable:
        CALLS.labels(self.backend, operation, "circuit_open").inc()
        return BackendUnavailable(
            f"back end {self.backend} is cut off after repeated failures",
            backend=self.backend,
            operation=operation,
            details={"reason": "circuit_open"},
        )

    def _on_event(self, name: str, kind: str, event: Event) -> None:
        state = getattr(event, "state", None)
        if kind != "state_changed" or state not in STATE_VALUES:
            return
        BREAKER_STATE.labels(name).set(STATE_VALUES[state])
        if state == OPENED:
            log.warning("backend_circuit_opened", backend=name, seconds=self.recovery_seconds)
        else:
            log.info("backend_circuit_state", backend=name, state=state)
