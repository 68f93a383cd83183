"""The ``fixed`` connector: the contract's ``call`` over a ``FixedClient``.

A fixed back end's records are laid out by the mapping of each operation (its layouts), so the
connector carries bytes: the request is ``{"record": <the encoded record>}`` and the answer
``{"record": <the answer's bytes>}``, which the mapping decodes. The connector owns the wire:
the pool, the framing, and turning the client's failures into the contract's errors. Whether
the back end may have carried a request out is known here (``request_sent``); whether that
matters (an inquiry does not move money) is the caller's to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendNotConfigured,
    BackendTimeout,
    BackendUnavailable,
)
from channelhub.connectors.fixed.client import FixedClient
from channelhub.connectors.fixed.errors import (
    FixedFrameError,
    FixedGarbage,
    FixedTimeout,
    FixedUnavailable,
)
from channelhub.connectors.fixed.framing import Framing
from channelhub.connectors.settings import ConnectorSettings

__all__ = ["FixedConnector"]


class FixedConnector:
    """Calls one back end that speaks fixed-length records over TCP."""

    def __init__(self, name: str, client: FixedClient) -> None:
        self._name = name
        self.client = client

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> FixedConnector:
        """Build the connector of back end ``name`` from its settings."""
        assert settings.host is not None
        assert settings.port is not None
        framing = Framing(
            prefix_bytes=settings.framing.prefix_bytes,
            inclusive=settings.framing.inclusive,
            max_record_bytes=min(
                settings.max_response_bytes,
                2 ** (8 * settings.framing.prefix_bytes) - 1 - settings.framing.prefix_bytes,
            ),
        )
        client = FixedClient(
            settings.host, settings.port, framing=framing, pool_size=settings.pool_size
        )
        return cls(name, client)

    @property
    def name(self) -> str:
        """The back end's name in settings."""
        return self._name

    @property
    def framing(self) -> Framing:
        """How this back end's records are delimited."""
        return self.client.framing

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Send ``request["record"]`` and return ``{"record": <the answer's bytes>}``.

        Raises:
            BackendNotConfigured: the request carries no record, or one too large to frame.
            BackendTimeout, BackendUnavailable: ``in_doubt`` when the record went out.
            BackendBadResponse: the answer is not a frame this back end sends (in doubt).
        """
        record = request.get("record")
        if not isinstance(record, bytes):
            raise BackendNotConfigured(
                f"back end {self.name!r}: a fixed call carries its encoded record",
                backend=self.name,
                operation=operation,
            )
        where = f"back end {self.name} ({self.client.host}:{self.client.port})"
        common: dict[str, Any] = {"backend": self.name, "operation": operation}
        try:
            answer = await self.client.exchange(record, timeout_seconds=timeout)
        except FixedFrameError as error:
            raise BackendNotConfigured(
                f"{where}: the record cannot be sent: {error.message}", **common
            ) from None
        except FixedTimeout as error:
            raise BackendTimeout(
                f"{where} did not answer {operation} in time",
                in_doubt=error.request_sent,
                details={"reason": "timeout"},
                **common,
            ) from None
        except FixedUnavailable as error:
            raise BackendUnavailable(
                f"{where} is unavailable",
                in_doubt=error.request_sent,
                details={"reason": "connection_lost" if error.request_sent else "refused"},
                **common,
            ) from None
        except FixedGarbage as error:
            raise BackendBadResponse(
                f"{where} answered {operation} with something unreadable: {error.message}",
                in_doubt=True,
                **common,
            ) from None
        return {"record": answer}

    async def close(self) -> None:
        """Close the pool's connections."""
        await self.client.close()
