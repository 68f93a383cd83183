"""The OpenAPI 3.1 document of the REST channels, generated from the catalog."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from channelhub import __version__
from channelhub.kernel import CODES
from channelhub.kernel.catalog import Catalog, CompiledService

__all__ = ["openapi_document"]

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
            "status": {"type": "string", "enum": ["succeeded", "failed", "reversed", "in_doubt"]},
            "code": {"type": "string", "enum": sorted(CODES)},
            "message": {"type": "string"},
            "data": data_schema,
            "details": {"type": "object"},
        },
    }


def _operation(service: CompiledService) -> dict[str, Any]:
    definition = service.definition
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
    return {
        "operationId": definition.id,
        "summary": definition.title,
        "description": definition.description,
        "tags": [definition.category.value],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": definition.idempotency == "required",
                "schema": {"type": "string", "maxLength": 128},
            },
            {
                "name": "X-Channel",
                "in": "header",
                "schema": {"type": "string", "enum": ["mobile", "web"]},
            },
            {
                "name": "X-Service-Version",
                "in": "header",
                "schema": {"type": "integer", "minimum": 1},
            },
            {"name": "Accept-Language", "in": "header", "schema": {"type": "string"}},
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
            **{
                status: {"description": text, "content": envelope}
                for status, text in _ERROR_STATUSES.items()
            },
        },
        "x-channelhub-version": definition.version,
        "x-channelhub-auth": definition.auth.level.value,
    }


@lru_cache(maxsize=4)
def openapi_document(catalog: Catalog) -> bytes:
    """Return the document as JSON bytes; computed once per catalog."""
    paths = {
        f"/api/v1/services/{service.id}": {"post": _operation(service)}
        for service in catalog.published()
        if {"mobile", "web"} & set(service.definition.channels)
    }
    document = {
        "openapi": "3.1.0",
        "info": {"title": "channelhub REST channel", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Envelope": _envelope({"type": "object"})}},
    }
    return orjson.dumps(document)
