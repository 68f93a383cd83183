"""The REST channel over a real socket: envelopes, bad input, idempotency under concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select

from channelhub.config import Settings
from channelhub.kit.db import create_engine
from channelhub.models import JournalEntry, OutboxEvent
from tests.support.flow_steps import DID

pytestmark = pytest.mark.asyncio

JSON = {"Content-Type": "application/json"}


async def _counts(settings: Settings) -> tuple[int, int]:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            journal = await conn.scalar(select(func.count()).select_from(JournalEntry))
            events = await conn.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.type.like("channelhub.%"))
            )
            return int(journal or 0), int(events or 0)
    finally:
        await engine.dispose()


async def _effects(settings: Settings) -> list[str]:
    """The test.record steps whose database effect is there, sorted."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(OutboxEvent.type).where(OutboxEvent.type.like(DID + "%")).order_by("type")
            )
            return [str(row[0]).removeprefix(DID) for row in rows]
    finally:
        await engine.dispose()


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        url, data=body, headers=headers if headers is not None else JSON
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_echo_answers_with_the_envelope(
    node: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    status, body = await _post(
        http, f"{node}/api/v1/services/system.echo", '{"hello": "bank", "n": [1, 2]}'
    )
    assert status == 200
    assert set(body) == {"txn_id", "status", "code", "message", "data"}
    assert (body["status"], body["code"], body["data"]) == (
        "succeeded",
        "OK",
        {"hello": "bank", "n": [1, 2]},
    )
    assert await _counts(settings) == (1, 1)


async def test_time_gives_server_time_and_business_date(
    node: str, http: aiohttp.ClientSession
) -> None:
    status, body = await _post(
        http, f"{node}/api/v1/services/system.time", "{}", {**JSON, "Accept-Language": "zh-CN"}
    )
    assert status == 200
    assert body["message"] == "交易成功"
    assert body["data"]["time_zone"] == "Asia/Shanghai"
    assert body["data"]["server_time"].endswith("Z")
    assert len(body["data"]["business_date"]) == 10


BAD_REQUESTS = [
    # (name, service, body, headers, status, code, field)
    ("malformed JSON", "system.echo", b'{"a": ', JSON, 400, "MALFORMED_REQUEST", None),
    ("not an object", "system.echo", b"[1, 2]", JSON, 400, "MALFORMED_REQUEST", "(body)"),
    ("invalid UTF-8", "system.echo", b'{"a": "\xff"}', JSON, 400, "MALFORMED_REQUEST", None),
    (
        "wrong type",
        "test.typed",
        b'{"amount": 12.5, "currency": "CNY", "to": "6222000011112222"}',
        JSON,
        400,
        "VALIDATION_FAILED",
        "amount",
    ),
    (
        "missing field",
        "test.typed",
        b'{"amount": "1.00", "currency": "CNY"}',
        JSON,
        400,
        "VALIDATION_FAILED",
        "to",
    ),
    (
        "unknown field",
        "test.typed",
        b'{"amount": "1.00", "currency": "CNY", "to": "62220000", "x": 1}',
        JSON,
        400,
        "VALIDATION_FAILED",
        "x",
    ),
    (
        "float money",
        "test.typed",
        b'{"amount": "1.005", "currency": "CNY", "to": "62220000"}',
        JSON,
        400,
        "INVALID_AMOUNT",
        "amount",
    ),
    ("unknown service", "no.such_service", b"{}", JSON, 404, "UNKNOWN_SERVICE", None),
    ("off channel", "test.teller_only", b"{}", JSON, 404, "SERVICE_NOT_ON_CHANNEL", None),
    ("needs login", "test.secured", b"{}", JSON, 401, "UNAUTHENTICATED", None),
    (
        "not JSON",
        "system.echo",
        b"a=1",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        None,
    ),
    (
        "bad key",
        "system.echo",
        b"{}",
        {**JSON, "Idempotency-Key": "has space"},
        400,
        "IDEMPOTENCY_KEY_INVALID",
        "Idempotency-Key",
    ),
    (
        "long key",
        "system.echo",
        b"{}",
        {**JSON, "Idempotency-Key": "k" * 129},
        400,
        "IDEMPOTENCY_KEY_INVALID",
        "Idempotency-Key",
    ),
    (
        "bad channel",
        "system.echo",
        b"{}",
        {**JSON, "X-Channel": "atm"},
        400,
        "VALIDATION_FAILED",
        "X-Channel",
    ),
    (
        "bad version",
        "system.echo",
        b"{}",
        {**JSON, "X-Service-Version": "-1"},
        400,
        "VALIDATION_FAILED",
        "X-Service-Version",
    ),
    (
        "too large",
        "system.echo",
        b'{"a": "' + b"x" * 70_000 + b'"}',
        JSON,
        413,
        "PAYLOAD_TOO_LARGE",
        None,
    ),
    (
        "deep nesting",
        "system.echo",
        b"[" * 5000 + b"]" * 5000,
        JSON,
        400,
        "MALFORMED_REQUEST",
        None,
    ),
]


@pytest.mark.parametrize(
    ("service", "body", "headers", "status", "code", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_input_gets_its_status_and_code_and_writes_nothing(
    node: str,
    http: aiohttp.ClientSession,
    settings: Settings,
    service: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer, envelope = await _post(http, f"{node}/api/v1/services/{service}", body, headers)
    assert (answer, envelope["code"], envelope["status"]) == (status, code, "failed")
    if field is not None:
        assert envelope["details"]["field"] == field
        assert field in envelope["message"] or field == "(body)"
    assert await _counts(settings) == (0, 0)


async def test_chunked_body_over_the_limit_is_refused(
    node: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    async def chunks() -> Any:
        yield b'{"a": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    async with http.post(
        f"{node}/api/v1/services/system.echo", data=chunks(), headers=JSON
    ) as response:
        assert response.status == 413
        assert (await response.json())["code"] == "PAYLOAD_TOO_LARGE"
    assert await _counts(settings) == (0, 0)


async def test_fifty_concurrent_duplicates_execute_once(
    node: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    headers = {**JSON, "Idempotency-Key": "same-key-50"}
    url = f"{node}/api/v1/services/test.flow"
    answers = await asyncio.gather(
        *(_post(http, url, '{"route": "left"}', headers) for _ in range(50))
    )
    assert {status for status, _ in answers} == {200}
    assert len({repr(sorted(body.items())) for _, body in answers}) == 1  # 50 identical answers
    # Every duplicate waited for the first, or ran and was rolled back: the effects are there once.
    assert await _effects(settings) == ["a", "b", "c", "left"]
    assert await _counts(settings) == (1, 1)


async def test_same_key_with_another_body_is_refused(
    node: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    headers = {**JSON, "Idempotency-Key": "k-1"}
    url = f"{node}/api/v1/services/system.echo"
    first_status, first = await _post(http, url, '{"n": 1}', headers)
    again_status, again = await _post(http, url, '{"n": 1}', headers)
    other_status, other = await _post(http, url, '{"n": 2}', headers)
    assert (first_status, again_status) == (200, 200)
    assert again == first
    assert (other_status, other["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert other["txn_id"] != first["txn_id"]
    # The same key on another channel is another transaction.
    mobile_status, mobile = await _post(http, url, '{"n": 2}', {**headers, "X-Channel": "mobile"})
    assert mobile_status == 200
    assert mobile["txn_id"] != first["txn_id"]
    assert await _counts(settings) == (2, 2)


async def test_failed_flow_maps_to_its_http_status(node: str, http: aiohttp.ClientSession) -> None:
    status, body = await _post(http, f"{node}/api/v1/services/test.flow", '{"fail_at": "b"}')
    assert (status, body["status"], body["code"]) == (422, "failed", "BUSINESS_RULE_VIOLATION")


async def test_openapi_lists_published_rest_services(
    node: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{node}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)  # a valid OpenAPI 3.1 document
    paths = document["paths"]
    assert "/api/v1/services/system.echo" in paths
    assert "/api/v1/services/test.teller_only" not in paths  # not released on mobile or web
    typed = paths["/api/v1/services/test.typed"]["post"]
    assert typed["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "amount",
        "currency",
        "to",
    ]
    assert {"400", "404", "409", "413", "422"} <= set(typed["responses"])


async def test_probes_and_metrics(node: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{node}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{node}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok", "migrations": "ok"}
    await _post(http, f"{node}/api/v1/services/system.echo", "{}")
    async with http.get(f"{node}/metrics") as response:
        text = await response.text()
    assert (
        'channelhub_transactions_total{channel="web",service="system.echo",status="succeeded"}'
        in text
    )
    assert "channelhub_transaction_duration_seconds_bucket" in text
