"""The ``http`` connector: JSON over HTTP(S) to a REST back end.

One aiohttp session per back end holds a bounded pool of keep-alive connections. Each
operation has its method and path below the back end's base URL; ``{field}`` in a path is
filled from the request (and left out of the body). A request goes out as a JSON object (the
query string for GET and DELETE); the answer must be a JSON object.

How an HTTP outcome maps onto the contract:

| outcome | error | in doubt (money-changing operation) |
|---|---|---|
| 2xx with a JSON object | the answer | — |
| connection refused, DNS or TLS failure | BackendUnavailable | no: nothing was sent |
| 429, 503 | BackendUnavailable | no: the back end says it did nothing |
| 504, no answer in time | BackendTimeout | yes |
| other 5xx, connection dropped mid-call | BackendUnavailable | yes |
| 4xx with a JSON object | BackendRejected (answer kept for the code table) | no |
| anything else, non-JSON, too large | BackendBadResponse | yes for 2xx/5xx, no for 4xx |
"""

from __future__ import annotations

import ssl
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendNotConfigured,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConnectorError,
    Operation,
)
from channelhub.connectors.settings import ConnectorSettings, TlsSettings

__all__ = [
    "HttpConnector",
    "HttpExchange",
    "HttpRoute",
    "build_ssl_context",
    "ssl_context_of",
]

_JSON = "application/json"
_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """Where one operation goes: its method and its path below the base URL."""

    operation: Operation
    method: str = "POST"
    path: str = "/"

    @property
    def path_fields(self) -> tuple[str, ...]:
        """Return the request fields the path is filled from."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.path) if f)


def build_ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """Return the TLS context for the bank's CA and client certificate, or None when neither
    is configured (the system's CAs then verify an https back end).

    Raises:
        BackendNotConfigured: a file cannot be read or does not hold what it should.
    """
    if tls.ca_file is None and tls.cert_file is None:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if tls.cert_file is not None:
            context.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
    except (OSError, ssl.SSLError) as error:
        raise BackendNotConfigured(
            f"TLS files cannot be loaded: {type(error).__name__}: {error.strerror or error}",
            backend="",
            operation="",
        ) from None
    return context


def ssl_context_of(name: str, tls: TlsSettings) -> ssl.SSLContext | None:
    """Return back end ``name``'s TLS context (``build_ssl_context``), naming the back end in
    the error.

    Raises:
        BackendNotConfigured: the TLS files cannot be loaded.
    """
    try:
        return build_ssl_context(tls)
    except BackendNotConfigured as error:
        raise BackendNotConfigured(
            f"back end {name}: {error.message}", backend=name, operation=""
        ) from None


class HttpExchange:
    """One back end's aiohttp session, and how an HTTP exchange's failures map onto the
    contract (the module's table), whatever the body's format: the ``http`` connector sends
    JSON through it, the ``iso20022`` connector XML."""

    def __init__(
        self,
        name: str,
        *,
        pool_size: int = 10,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = 1_048_576,
        accept: str = _JSON,
    ) -> None:
        self.name = name
        self.pool_size = pool_size
        self.ssl_context = ssl_context
        self.max_response_bytes = max_response_bytes
        self.accept = accept
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> aiohttp.ClientSession:
        """Return the session, made on first use: a session belongs to the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.pool_size,
                    ssl=self.ssl_context if self.ssl_context is not None else True,
                ),
                headers={"Accept": self.accept},
            )
        return self._session

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        in_doubt: bool,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        """Send one request (``kwargs`` go to aiohttp: data, params, headers) and return the
        answer's status and body, at most ``max_response_bytes``.

        Raises:
            BackendTimeout, BackendUnavailable, BackendBadResponse: as the module's table says;
                ``in_doubt`` is what a failure after sending is.
        """
        try:
            async with self.open().request(
                method,
                url,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                **kwargs,
            ) as response:
                body = await self._read(response, operation, in_doubt)
                return response.status, body
        except ConnectorError:
            raise
        except aiohttp.ConnectionTimeoutError:
            raise self.error(BackendUnavailable, operation, "connect timeout", False) from None
        except TimeoutError:
            raise self.error(BackendTimeout, operation, "no answer in time", in_doubt) from None
        except aiohttp.ClientConnectorError as error:
            reason = "tls" if isinstance(error, aiohttp.ClientSSLError) else "connect"
            raise self.error(BackendUnavailable, operation, reason, False) from None
        except aiohttp.ClientResponseError as error:
            raise self.error(
                BackendBadResponse, operation, f"not HTTP ({error.message})", in_doubt
            ) from None
        except aiohttp.ClientError as error:
            raise self.error(
                BackendUnavailable, operation, f"connection lost ({type(error).__name__})", in_doubt
            ) from None

    def check_status(self, operation: str, status: int, in_doubt: bool) -> bool:
        """Raise for a status that is a fault (429, 5xx, 1xx, 3xx); return whether the call
        is still in doubt: not after a 4xx, where the back end refused the request as it stood.

        Raises:
            BackendUnavailable, BackendTimeout, BackendBadResponse: as the module's table says.
        """
        if status in (429, 503):
            raise self.error(BackendUnavailable, operation, f"HTTP {status}", False, status)
        if status == 504:
            raise self.error(BackendTimeout, operation, "HTTP 504", in_doubt, status)
        if status >= 500:
            raise self.error(BackendUnavailable, operation, f"HTTP {status}", in_doubt, status)
        if 400 <= status < 500:
            return False
        if not 200 <= status < 300:
            raise self.error(BackendBadResponse, operation, f"HTTP {status}", in_doubt, status)
        return in_doubt

    async def _read(
        self, response: aiohttp.ClientResponse, operation: str, in_doubt: bool
    ) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_response_bytes:
            raise self.error(BackendBadResponse, operation, "answer too large", in_doubt)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_response_bytes:
                raise self.error(BackendBadResponse, operation, "answer too large", in_doubt)
        return bytes(body)

    def error(
        self,
        kind: type[ConnectorError],
        operation: str,
        reason: str,
        in_doubt: bool,
        status: int | None = None,
    ) -> ConnectorError:
        """Return a ``kind`` error about ``operation`` of this back end, saying ``reason``."""
        details: dict[str, Any] = {"reason": reason}
        if status is not None:
            details["status"] = status
        return kind(
            f"back end {self.name}, {operation}: {reason}",
            backend=self.name,
            operation=operation,
            in_doubt=in_doubt,
            details=details,
        )


class HttpConnector:
    """JSON over HTTP(S) to one back end."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        routes: Mapping[str, HttpRoute],
        pool_size: int = 10,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = 1_048_576,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.routes = dict(routes)
        self.pool_size = pool_size
        self.ssl_context = ssl_context
        self.max_response_bytes = max_response_bytes
        self._exchange = HttpExchange(
            name,
            pool_size=pool_size,
            ssl_context=ssl_context,
            max_response_bytes=max_response_bytes,
        )

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> HttpConnector:
        """Build the connector of back end ``name`` from its settings.

        Raises:
            BackendNotConfigured: the TLS files cannot be loaded.
        """
        assert settings.url is not None  # the settings refuse an http back end without url
        routes = {
            op: HttpRoute(Operation(op, spec.idempotent), spec.method, spec.path)
            for op, spec in settings.operations.items()
        }
        return cls(
            name,
            base_url=settings.url,
            routes=routes,
            pool_size=settings.pool_size,
            ssl_context=ssl_context_of(name, settings.tls),
            max_response_bytes=settings.max_response_bytes,
        )

    async def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract hands the deadline to the wire
    ) -> Mapping[str, Any]:
        """Send ``request`` as ``operation`` and return the back end's JSON answer.

        Raises:
            BackendTimeout, BackendUnavailable, BackendBadResponse, BackendRejected,
            BackendNotConfigured: see the module's table.
        """
        route = self.routes.get(operation)
        if route is None:
            raise BackendNotConfigured(
                f"back end {self.name} has no operation {operation!r}",
                backend=self.name,
                operation=operation,
            )
        url, rest = self._url(route, request)
        if route.method in ("GET", "DELETE"):
            kwargs: dict[str, Any] = {"params": _query(rest)}
        else:
            kwargs = {"data": orjson.dumps(rest), "headers": {"Content-Type": _JSON}}
        in_doubt = not route.operation.idempotent
        status, body = await self._exchange.send(
            operation, route.method, url, in_doubt=in_doubt, timeout=timeout, **kwargs
        )
        return self._answer(operation, status, body, in_doubt)

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        await self._exchange.close()

    def _open(self) -> aiohttp.ClientSession:
        return self._exchange.open()

    def _url(self, route: HttpRoute, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        fields = route.path_fields
        missing = [f for f in fields if f not in request]
        if missing:
            raise BackendNotConfigured(
                f"back end {self.name}: the request has no {missing[0]!r} for the path",
                backend=self.name,
                operation=route.operation.name,
                details={"field": missing[0]},
            )
        values = {f: quote(str(request[f]), safe="") for f in fields}
        rest = {k: v for k, v in request.items() if k not in values}
        return self.base_url + route.path.format_map(values), rest

    def _answer(
        self, operation: str, status: int, body: bytes, in_doubt: bool
    ) -> Mapping[str, Any]:
        in_doubt = self._exchange.check_status(operation, status, in_doubt)
        answer = self._decode(operation, status, body, in_doubt)
        if status >= 400:
            raise BackendRejected(
                f"back end {self.name} refused {operation} (HTTP {status})",
                backend=self.name,
                operation=operation,
                answer=answer,
                details={"status": status},
            )
        return answer

    def _decode(self, operation: str, status: int, body: bytes, in_doubt: bool) -> dict[str, Any]:
        if not body.strip() and status == 204:
            return {}
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self._exchange.error(
                BackendBadResponse, operation, "not JSON", in_doubt, status
            ) from None
        if not isinstance(answer, dict):
            raise self._exchange.error(
                BackendBadResponse, operation, "not a JSON object", in_doubt, status
            )
        return answer


def _query(fields: Mapping[str, Any]) -> dict[str, str]:
    """Return ``fields`` as query parameters: scalars only, booleans as true/false."""
    query: dict[str, str] = {}
    for key, value in fields.items():
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        elif isinstance(value, str | int):
            query[key] = str(value)
        elif value is not None:
            raise TypeError(f"query field {key!r} must be a string, integer or boolean")
    return query
