"""The named back ends of this node, built from the ``connectors`` settings.

Each back end is its kind's connector wrapped in its timeout, retry policy and circuit breaker
(``ResilientConnector``). A flow asks for a back end by name; a name that is not configured,
or a kind this version does not build yet, is answered with ``BackendNotConfigured`` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channelhub.connectors.base import BackendNotConfigured, Connector, Operation
from channelhub.connectors.fixed.connector import FixedConnector
from channelhub.connectors.http import HttpConnector
from channelhub.connectors.iso8583 import Iso8583Connector
from channelhub.connectors.iso20022 import Iso20022Connector
from channelhub.connectors.settings import ConnectorKind, ConnectorSettings
from channelhub.governance.breaker import CircuitBreaker
from channelhub.governance.resilience import ResilientConnector, RetryPolicy

__all__ = ["BUILDERS", "BackendRegistry", "ConnectorBuilder", "resilient"]

#: Build a kind's bare connector from a back end's name and settings.
ConnectorBuilder = Callable[[str, ConnectorSettings], Connector]

#: The connector kinds this version builds; the others are refused by name.
BUILDERS: dict[ConnectorKind, ConnectorBuilder] = {
    "http": HttpConnector.from_settings,
    "fixed": FixedConnector.from_settings,
    "iso8583": Iso8583Connector.from_settings,
    "iso20022": Iso20022Connector.from_settings,
}


def resilient(connector: Connector, settings: ConnectorSettings) -> ResilientConnector:
    """Wrap ``connector`` in the timeout, retries and circuit breaker ``settings`` ask for."""
    return ResilientConnector(
        connector,
        breaker=CircuitBreaker(
            connector.name,
            failure_threshold=settings.breaker.failure_threshold,
            recovery_seconds=settings.breaker.recovery_seconds,
        ),
        timeout=settings.timeout_ms / 1000,
        retry=RetryPolicy(
            retries=settings.retries,
            backoff_seconds=settings.retry_backoff_ms / 1000,
            max_backoff_seconds=settings.retry_max_ms / 1000,
        ),
        operations={op: Operation(op, spec.idempotent) for op, spec in settings.operations.items()},
        timeouts={
            op: spec.timeout_ms / 1000
            for op, spec in settings.operations.items()
            if spec.timeout_ms is not None
        },
    )


class BackendRegistry:
    """The back ends of one node, by name; built once, closed at shutdown."""

    def __init__(
        self,
        settings: Mapping[str, ConnectorSettings],
        *,
        builders: Mapping[ConnectorKind, ConnectorBuilder] | None = None,
    ) -> None:
        self.settings = dict(settings)
        self.builders = dict(BUILDERS if builders is None else builders)
        self._backends: dict[str, ResilientConnector] = {}

    @property
    def names(self) -> list[str]:
        """Return the configured back ends' names."""
        return sorted(self.settings)

    def unavailable(self) -> dict[str, str]:
        """Return the configured back ends whose kind is not built by this version, with why."""
        return {
            name: f"connector kind {spec.kind!r} is not available in this version"
            for name, spec in self.settings.items()
            if spec.kind not in self.builders
        }

    def get(self, name: str) -> ResilientConnector:
        """Return back end ``name``, building it on first use.

        Raises:
            BackendNotConfigured: no such back end, its kind is not built yet, or its TLS files
                cannot be loaded.
        """
        backend = self._backends.get(name)
        if backend is not None:
            return backend
        spec = self.settings.get(name)
        if spec is None:
            raise BackendNotConfigured(
                f"no back end named {name!r} is configured (known: {', '.join(self.names)})",
                backend=name,
                operation="",
            )
        builder = self.builders.get(spec.kind)
        if builder is None:
            raise BackendNotConfigured(
                f"back end {name!r}: connector kind {spec.kind!r} is not available in this version",
                backend=name,
                operation="",
                details={"kind": spec.kind},
            )
        backend = resilient(builder(name, spec), spec)
        self._backends[name] = backend
        return backend

    async def close(self) -> None:
        """Close every back end built so far."""
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.close()
