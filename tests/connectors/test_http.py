"""The http connector against a REST back end on a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendNotConfigured,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Connector,
    Operation,
    as_step_error,
)
from channelhub.connectors.http import HttpConnector, HttpRoute
from channelhub.kernel.codes import lookup
from channelhub.kernel.steps import OutcomeUnknown
from tests.connectors.http_backend import RestBackend, free_port, rest_backend

ROUTES = {
    "echo": HttpRoute(Operation("echo", idempotent=False), "POST", "/echo"),
    "balance": HttpRoute(
        Operation("balance", idempotent=True), "GET", "/accounts/{account}/balance"
    ),
    "slow": HttpRoute(Operation("slow"), "POST", "/slow"),
    "slow_read": HttpRoute(Operation("slow_read", idempotent=True), "GET", "/slow"),
    "garbage": HttpRoute(Operation("garbage"), "POST", "/garbage"),
    "list": HttpRoute(Operation("list"), "POST", "/list"),
    "refuse": HttpRoute(Operation("refuse"), "POST", "/refuse"),
    "teapot": HttpRoute(Operation("teapot"), "POST", "/teapot"),
    "huge": HttpRoute(Operation("huge"), "POST", "/huge"),
    "crash": HttpRoute(Operation("crash"), "POST", "/crash"),
    "busy": HttpRoute(Operation("busy"), "POST", "/flaky"),
}


@pytest.fixture
async def backend() -> AsyncIterator[RestBackend]:
    async with rest_backend() as running:
        yield running


@pytest.fixture
async def connector(backend: RestBackend) -> AsyncIterator[HttpConnector]:
    client = HttpConnector("core", base_url=backend.url + "/", routes=ROUTES, pool_size=4)
    yield client
    await client.close()


async def test_it_is_a_connector(connector: HttpConnector) -> None:
    assert isinstance(connector, Connector)


async def test_a_post_sends_and_returns_json(
    connector: HttpConnector, backend: RestBackend
) -> None:
    request = {"amount": "12.50", "currency": "CNY", "memo": "房租"}
    answer = await connector.call("echo", request, timeout=5)
    assert answer == {"echo": request, "content_type": "application/json"}
    assert backend.requests["/echo"] == 1


async def test_a_get_fills_the_path_and_the_query(connector: HttpConnector) -> None:
    answer = await connector.call(
        "balance", {"account": "6222 0001/x", "currency": "USD"}, timeout=5
    )
    assert answer == {"account": "6222 0001/x", "currency": "USD", "balance": "1250.00"}


async def test_a_slow_back_end_times_out_in_doubt(connector: HttpConnector) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(BackendTimeout) as caught:
            await connector.call("slow", {"amount": "1.00"}, timeout=0.2)
    assert caught.value.code == "BACKEND_TIMEOUT"
    assert caught.value.in_doubt  # a money-changing request was sent: it may have happened
    assert isinstance(as_step_error(caught.value), OutcomeUnknown)


async def test_an_idempotent_timeout_is_not_in_doubt(connector: HttpConnector) -> None:
    with pytest.raises(BackendTimeout) as caught:
        await connector.call("slow_read", {}, timeout=0.2)
    assert not caught.value.in_doubt
    assert as_step_error(caught.value) is caught.value


async def test_a_closed_port_is_unavailable_and_not_in_doubt() -> None:
    client = HttpConnector("core", base_url=f"http://127.0.0.1:{free_port()}", routes=ROUTES)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await client.call("echo", {"a": 1}, timeout=5)
    finally:
        await client.close()
    assert caught.value.code == "BACKEND_UNAVAILABLE"
    assert caught.value.details["reason"] == "connect"
    assert not caught.value.in_doubt  # nothing was sent


@pytest.mark.parametrize("operation", ["garbage", "list", "huge"])
async def test_an_unintelligible_answer_is_a_bad_response(
    connector: HttpConnector, operation: str
) -> None:
    with pytest.raises(BackendBadResponse) as caught:
        await connector.call(operation, {}, timeout=5)
    error = caught.value
    assert error.code == "BACKEND_BAD_RESPONSE"
    assert lookup(error.code).http_status == 502
    assert lookup(error.code).iso8583 == "96"
    assert error.in_doubt


async def test_a_business_refusal_keeps_the_answer(connector: HttpConnector) -> None:
    with pytest.raises(BackendRejected) as caught:
        await connector.call("refuse", {}, timeout=5)
    assert caught.value.answer == {"result": "51", "text": "insufficient funds"}
    assert caught.value.details["status"] == 422
    assert not caught.value.in_doubt


async def test_a_4xx_without_json_is_a_bad_response_not_in_doubt(
    connector: HttpConnector,
) -> None:
    with pytest.raises(BackendBadResponse) as caught:
        await connector.call("teapot", {}, timeout=5)
    assert not caught.value.in_doubt


async def test_a_500_is_unavailable_and_in_doubt(connector: HttpConnector) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await connector.call("crash", {}, timeout=5)
    assert caught.value.details["status"] == 500
    assert caught.value.in_doubt


async def test_a_503_says_nothing_happened(connector: HttpConnector, backend: RestBackend) -> None:
    backend.failures_left = 1
    with pytest.raises(BackendUnavailable) as caught:
        await connector.call("busy", {}, timeout=5)
    assert not caught.value.in_doubt


async def test_an_undeclared_operation_is_not_configured(connector: HttpConnector) -> None:
    with pytest.raises(BackendNotConfigured, match="no operation 'transfer'"):
        await connector.call("transfer", {}, timeout=5)


async def test_a_path_field_missing_from_the_request_is_named(connector: HttpConnector) -> None:
    with pytest.raises(BackendNotConfigured) as caught:
        await connector.call("balance", {"currency": "CNY"}, timeout=5)
    assert caught.value.details["field"] == "account"


async def test_the_pool_is_bounded(connector: HttpConnector, backend: RestBackend) -> None:
    results = await asyncio.gather(
        *(connector.call("echo", {"n": n}, timeout=10) for n in range(20))
    )
    assert sorted(r["echo"]["n"] for r in results) == list(range(20))
    session = connector._open()
    assert session.connector is not None
    assert session.connector.limit == 4
