"""Each fault of the simulated clearing house, and of a clearing house that answers wrongly,
and what the connector makes of it: which error, and whether the transfer is in doubt."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from channelhub.connectors.base import (
    BackendBadResponse,
    BackendTimeout,
    BackendUnavailable,
    ConnectorError,
)
from channelhub.connectors.iso20022 import Iso20022Connector
from channelhub.connectors.simulators.clearing import ClearingSimulator
from channelhub.kit.iso20022.pacs002 import GroupStatus, TransactionStatus, status_report
from tests.connectors.iso20022.conftest import LIU, MakeConnector, inquiry, transfer


async def test_slow_answers_time_out_in_doubt_and_an_inquiry_settles_it(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    await clearing.set_faults(slow_ms=5_000)
    request = transfer(LIU, "3.00")
    with pytest.raises(BackendTimeout) as caught:
        await connector.call("credit_transfer", request, timeout=0.3)
    assert caught.value.in_doubt
    with pytest.raises(BackendTimeout) as inquired:
        await connector.call("status", inquiry(request), timeout=0.3)
    assert not inquired.value.in_doubt
    await clearing.set_faults(slow_ms=0)
    answer = await connector.call("status", inquiry(request), timeout=10)
    assert answer["status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 300


async def test_a_dropped_transfer_is_in_doubt_though_the_money_arrived(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    await clearing.set_faults(drop=True)
    request = transfer(LIU, "4.00")
    with pytest.raises(BackendTimeout) as caught:
        await connector.call("credit_transfer", request, timeout=0.5)
    assert caught.value.in_doubt
    assert caught.value.code == "BACKEND_TIMEOUT"
    assert clearing.credited(LIU[1]) == 400
    # Inquiries are answered while drop is on: that is how the doubt is settled.
    assert (await connector.call("status", inquiry(request), timeout=10))["status"] == "ACSC"
    # Sent again once the fault is gone, the same message gets its answer, credited once.
    await clearing.set_faults(drop=False)
    assert (await connector.call("credit_transfer", request, timeout=10))["status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 400


async def test_garbage_after_a_transfer_is_a_bad_response_in_doubt(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    await clearing.set_faults(garbage=True)
    request = transfer(LIU, "6.00")
    with pytest.raises(BackendBadResponse) as caught:
        await connector.call("credit_transfer", request, timeout=10)
    assert caught.value.in_doubt
    assert "not a pacs.002" in caught.value.message
    with pytest.raises(BackendBadResponse) as inquired:
        await connector.call("status", inquiry(request), timeout=10)
    assert not inquired.value.in_doubt
    assert clearing.credited(LIU[1]) == 600


async def test_down_refuses_without_doubt_and_comes_back_on_the_same_port(
    connector: Iso20022Connector, clearing: ClearingSimulator
) -> None:
    address = clearing.address
    await clearing.set_faults(down=True)
    with pytest.raises(BackendUnavailable) as caught:
        await connector.call("credit_transfer", transfer(LIU, "1.00"), timeout=10)
    assert not caught.value.in_doubt
    assert caught.value.details["reason"] == "connect"
    assert clearing.credited(LIU[1]) == 0
    await clearing.set_faults(down=False)
    assert clearing.address == address
    answer = await connector.call("credit_transfer", transfer(LIU, "1.00"), timeout=10)
    assert answer["status"] == "ACSC"


async def test_a_simulator_started_down_refuses_until_brought_up() -> None:
    from channelhub.connectors.simulators.clearing import ClearingFaults

    clearing = ClearingSimulator(faults=ClearingFaults(down=True))
    await clearing.start()
    connector = Iso20022Connector("clearing", base_url=clearing.url)
    try:
        with pytest.raises(BackendUnavailable):
            await connector.call("credit_transfer", transfer(LIU), timeout=10)
        await clearing.set_faults(down=False)
        assert (await connector.call("credit_transfer", transfer(LIU), timeout=10))["status"]
    finally:
        await connector.close()
        await clearing.close()


# --- a clearing house that answers wrongly ---------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def rogue() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start an HTTP server answering every POST with ``handler``; return its URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/{path:.*}", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _report(message_id: str, tx_id: str, status: str = "ACSC") -> bytes:
    return status_report(
        message_id="R1",
        created_at=dt.datetime.now(dt.UTC),
        group=GroupStatus(message_id, None, 1, status),
        transactions=[TransactionStatus("E2E", tx_id, status)],
        original_message_name="pacs.008.001.08",
        instructing_agent=None,
        instructed_agent=None,
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda m, t: _report(m, "SOMEONE-ELSES"), "another transaction"),
        (lambda m, t: _report("OTHER-MESSAGE", t), "another message"),
        (lambda m, t: b"<Document xmlns='urn:x'/>", "not a pacs.002"),
        (lambda m, t: b"{}", "not a pacs.002"),
        (lambda m, t: b"", "not a pacs.002"),
    ],
)
async def test_an_answer_about_something_else_is_a_bad_response_in_doubt(
    rogue: Callable[[Handler], Awaitable[str]],
    make_connector: MakeConnector,
    answer: Callable[[str, str], bytes],
    why: str,
) -> None:
    request = transfer(LIU)

    async def handler(_: web.Request) -> web.Response:
        body = answer(request["message_id"], request["transaction_id"])
        return web.Response(body=body, content_type="application/xml")

    connector = make_connector(base_url=await rogue(handler))
    with pytest.raises(BackendBadResponse, match=why) as caught:
        await connector.call("credit_transfer", request, timeout=10)
    assert caught.value.in_doubt


@pytest.mark.parametrize(
    ("status", "error", "in_doubt"),
    [
        (503, BackendUnavailable, False),
        (429, BackendUnavailable, False),
        (504, BackendTimeout, True),
        (500, BackendUnavailable, True),
        (400, BackendBadResponse, False),
        (302, BackendBadResponse, True),
    ],
)
async def test_http_statuses_map_as_the_http_connector_maps_them(
    rogue: Callable[[Handler], Awaitable[str]],
    make_connector: MakeConnector,
    status: int,
    error: type[ConnectorError],
    in_doubt: bool,
) -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    connector = make_connector(base_url=await rogue(handler))
    with pytest.raises(error) as caught:
        await connector.call("credit_transfer", transfer(LIU), timeout=10)
    assert caught.value.in_doubt is in_doubt


async def test_a_4xx_with_a_pacs002_about_the_transfer_is_its_answer(
    rogue: Callable[[Handler], Awaitable[str]], make_connector: MakeConnector
) -> None:
    request = transfer(LIU)

    async def handler(_: web.Request) -> web.Response:
        body = _report(request["message_id"], request["transaction_id"], "RJCT")
        return web.Response(status=400, body=body, content_type="application/xml")

    connector = make_connector(base_url=await rogue(handler))
    answer = await connector.call("credit_transfer", request, timeout=10)
    assert answer["status"] == "RJCT"


async def test_a_connection_lost_after_sending_is_in_doubt(make_connector: MakeConnector) -> None:
    async def read_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"</Document>")
        writer.transport.abort()

    server = await asyncio.start_server(read_then_hang_up, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    connector = make_connector(base_url=f"http://{host}:{port}")
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await connector.call("credit_transfer", transfer(LIU), timeout=10)
        assert caught.value.in_doubt
        with pytest.raises(BackendUnavailable) as inquired:
            await connector.call("status", inquiry(transfer(LIU)), timeout=10)
        assert not inquired.value.in_doubt
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_over_the_size_cap_is_a_bad_response(
    rogue: Callable[[Handler], Awaitable[str]],
) -> None:
    from channelhub.connectors.http import HttpExchange

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=b"<" * 4096, content_type="application/xml")

    url = await rogue(handler)
    exchange = HttpExchange("clearing", max_response_bytes=1024)
    connector = Iso20022Connector("clearing", base_url=url, exchange=exchange)
    try:
        with pytest.raises(BackendBadResponse, match="too large") as caught:
            await connector.call("credit_transfer", transfer(LIU), timeout=10)
        assert caught.value.in_doubt
    finally:
        await connector.close()
