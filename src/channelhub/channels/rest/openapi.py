"""The OpenAPI 3.1 document of the REST channels, generated from the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from channelhub import __version__
from channelhub.kernel import CODES
from channelhub.kernel.catalog import Catalog, CompiledService

__all__ = ["openapi_document", "partner_openapi_document"]

_ERROR_STATUSES = {
    "400": "Malformed JSON, a field failing the input schema, or a bad header (`details.field`).",
    "401": "Authentication is missing or too weak.",
    "403": "A required scope is missing.",
    "404": "No such service, or not on this channel.",
    "409": "The Idempotency-Key was used for another request, or the first one is still running.",
    "413": "The body is larger than the configured limit.",
    "415": "The body is not JSON.",
    "422": "The bank refused the transaction (funds, limits, rules).",
    "429": "Too many requests.",
    "500": "The platform failed; the transaction was undone.",
    "503": "A back end or the database is unavailable.",
}


def _envelope(data_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["txn_id", "status", "code", "message", "data"],
        "properties": {
            "txn_id": {"type": "string", "format": "uuid"},
            "status": {
                "type": "string",
                "enum": ["succeeded", "failed", "reversed", "in_doubt", "in_review"],
            },
            "code": {"type": "string", "enum": sorted(CODES)},
            "message": {"type": "string"},
            "data": data_schema,
            "details": {"type": "object"},
        },
    }


def _header(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema}


@dataclass(frozen=True)
class _Channel:
    """What differs between the REST channels' document and the partners'."""

    title: str
    prefix: str
    kinds: frozenset[str]
    headers: tuple[dict[str, Any], ...]
    security: dict[str, Any] | None = None


_TEXT = {"type": "string", "maxLength": 256}
_REST = _Channel(
    title="channelhub REST channel",
    prefix="/api/v1/services",
    kinds=frozenset({"mobile", "web"}),
    headers=(
        _header("X-Channel", {"type": "string", "enum": ["mobile", "web"]}),
        _header("X-Service-Version", {"type": "integer", "minimum": 1}),
    ),
)
_PARTNER = _Channel(
    title="channelhub partner open API",
    prefix="/open/v1/services",
    kinds=frozenset({"partner"}),
    headers=(
        _header("X-Client-Id", _TEXT, required=True),
        _header("X-Timestamp", {"type": "string", "pattern": "^[0-9]{1,12}$"}, required=True),
        _header("X-Nonce", {"type": "string", "maxLength": 128}, required=True),
        _header("X-Signature", _TEXT, required=True),
        _header("X-Consent-Id", {"type": "string", "format": "uuid"}),
    ),
    security={
        "clientCredentials": {
            "type": "oauth2",
            "description": "Client credentials at /oauth/token; every call signed "
            "(HMAC-SHA256, see docs/partners.md).",
            "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
        }
    },
)


def _operation(service: CompiledService, channel: _Channel) -> dict[str, Any]:
    definition = service.definition
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
    operation: dict[str, Any] = {
        "operationId": definition.id,
        "summary": definition.title,
        "description": definition.description,
        "tags": [definition.category.value],
        "parameters": [
            _header(
                "Idempotency-Key",
                {"type": "string", "maxLength": 128},
                required=definition.idempotency == "required",
            ),
            *channel.headers,
            _header("Accept-Language", {"type": "string"}),
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": definition.input}},
        },
        "responses": {
            "200": {
                "description": "Completed.",
                "content": {"application/json": {"schema": _envelope(definition.output)}},
            },
            "202": {
                "description": "Held for review by the bank (REVIEW_PENDING): the money is "
                "held until a staff member decides; repeat the call with the same "
                "Idempotency-Key to learn the outcome.",
                "content": envelope,
            },
            **{
                status: {"description": text, "content": envelope}
                for status, text in _ERROR_STATUSES.items()
            },
        },
        "x-channelhub-version": definition.version,
        "x-channelhub-auth": definition.auth.level.value,
    }
    if channel.security is not None:
        operation["security"] = [{"clientCredentials": list(definition.auth.scopes)}]
    return operation


def _document(catalog: Catalog, channel: _Channel) -> bytes:
    paths = {
        f"{channel.prefix}/{service.id}": {"post": _operation(service, channel)}
        for service in catalog.published()
        if channel.kinds & set(service.definition.channels)
    }
    components: dict[str, Any] = {"schemas": {"Envelope": _envelope({"type": "object"})}}
    if channel.security is not None:
        components["securitySchemes"] = channel.security
    document = {
        "openapi": "3.1.0",
        "info": {"title": channel.title, "version": __version__},
        "paths": paths,
        "components": components,
    }
    return orjson.dumps(document)


@lru_cache(maxsize=4)
def openapi_document(catalog: Catalog) -> bytes:
    """Return the REST channels' document as JSON bytes; computed once per catalog."""
    return _document(catalog, _REST)


@lru_cache(maxsize=4)
def partner_openapi_document(catalog: Catalog) -> bytes:
    """Return the partner open API's document: exactly the services released to the
    ``partner`` channel; computed once per catalog."""
    return _document(catalog, _PARTNER)
