"""Timeouts, retries and the circuit breaker around any connector.

Every call gets a deadline: the connector's own, and ``asyncio.timeout`` over it in case a
connector overlooks one. An idempotent operation that timed out or found the back end
unavailable is tried again, at most ``retries`` times, after an exponential pause with full
jitter (so that nodes do not retry in step); a money-changing operation is sent once. Each
attempt passes through the back end's circuit breaker, so an open circuit ends the retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channelhub.connectors.base import (
    BackendTimeout,
    BackendUnavailable,
    Connector,
    ConnectorError,
    Operation,
)
from channelhub.governance.breaker import CircuitBreaker
from channelhub.governance.metrics import CALL_SECONDS, CALLS, RETRIES
from channelhub.kit.logging import get_logger

__all__ = ["ResilientConnector", "RetryPolicy"]

log = get_logger(__name__)

_OUTCOMES: dict[str, str] = {
    "BACKEND_TIMEOUT": "timeout",
    "BACKEND_UNAVAILABLE": "unavailable",
    "BACKEND_BAD_RESPONSE": "bad_response",
    "BACKEND_NOT_CONFIGURED": "not_configured",
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an idempotent operation is tried again."""

    retries: int = 2
    backoff_seconds: float = 0.1
    max_backoff_seconds: float = 2.0

    def pause(self, retry: int) -> float:
        """Return the pause before retry number ``retry`` (1-based): full jitter up to an
        exponentially growing ceiling."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (retry - 1))
        return random.uniform(0, ceiling)


class ResilientConnector:
    """A connector with a mandatory timeout, bounded retries and a circuit breaker."""

    def __init__(
        self,
        connector: Connector,
        *,
        breaker: CircuitBreaker,
        timeout: float,
        retry: RetryPolicy,
        operations: Mapping[str, Operation] | None = None,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.connector = connector
        self.breaker = breaker
        self.timeout = timeout
        self.retry = retry
        self.operations = dict(operations or {})
        self.timeouts = dict(timeouts or {})

    @property
    def name(self) -> str:
        """The back end's name."""
        return self.connector.name

    def operation(self, name: str) -> Operation:
        """Return how ``name`` is declared; an undeclared operation is never retried."""
        return self.operations.get(name) or Operation(name, idempotent=False)

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Call the back end, retrying an idempotent ``operation``; ``timeout`` bounds each
        attempt (default: the operation's, else the back end's).

        Raises:
            BackendTimeout, BackendUnavailable, BackendBadResponse, BackendRejected,
            BackendNotConfigured: as the connector contract says, after the retries.
        """
        spec = self.operation(operation)
        limit = timeout if timeout is not None else self.timeouts.get(operation, self.timeout)
        attempts = 1 + (self.retry.retries if spec.idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                return await self.breaker.call(
                    operation, lambda: self._attempt(spec, request, limit)
                )
            except (BackendTimeout, BackendUnavailable) as error:
                circuit_open = error.details.get("reason") == "circuit_open"
                if attempt == attempts or circuit_open:
                    raise
                RETRIES.labels(self.name, operation).inc()
                pause = self.retry.pause(attempt)
                log.info(
                    "backend_retry",
                    backend=self.name,
                    operation=operation,
                    code=error.code,
                    attempt=attempt,
                    pause_ms=round(pause * 1000),
                )
                await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        """Close the connector underneath."""
        await self.connector.close()

    async def _attempt(
        self, spec: Operation, request: Mapping[str, Any], limit: float
    ) -> Mapping[str, Any]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            async with asyncio.timeout(limit):
                return await self.connector.call(spec.name, request, timeout=limit)
        except TimeoutError:
            outcome = "timeout"
            raise BackendTimeout(
                f"back end {self.name} did not answer {spec.name} within {limit:g} s",
                backend=self.name,
                operation=spec.name,
                in_doubt=not spec.idempotent,
                details={"timeout_seconds": limit},
            ) from None
        except ConnectorError as error:
            outcome = _OUTCOMES.get(error.code, "rejected")
            raise
        except Exception:
            outcome = "error"
            log.exception("backend_call_crashed", backend=self.name, operation=spec.name)
            raise
        finally:
            CALL_SECONDS.labels(self.name, spec.name).observe(time.perf_counter() - started)
            CALLS.labels(self.name, spec.name, outcome).inc()
