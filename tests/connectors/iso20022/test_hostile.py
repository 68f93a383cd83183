"""Hostile and broken bodies sent straight to the simulated clearing house, over a real
socket: each is refused with FF01 (or 413), nothing is credited, and it carries on."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from channelhub.connectors.iso20022 import Iso20022Connector
from channelhub.connectors.simulators.clearing import ClearingSimulator
from channelhub.kit.iso20022.pacs002 import read_status_report
from channelhub.kit.iso20022.pacs008 import MAX_MESSAGE_BYTES
from tests.connectors.iso20022.conftest import LIU, transfer

_PACS008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b'<Document xmlns="' + _PACS008.encode() + b'"><FIToFICstmrCdtTrf><GrpHdr>'
    b"<MsgId>&lol2;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<Document xmlns="' + _PACS008.encode() + b'"><FIToFICstmrCdtTrf><GrpHdr>'
    b"<MsgId>&x;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _post(
    session: aiohttp.ClientSession, clearing: ClearingSimulator, path: str, body: bytes
) -> tuple[int, bytes]:
    async with session.post(clearing.url + path, data=io.BytesIO(body)) as response:
        return response.status, await response.read()


@pytest.mark.parametrize("path", ["/pacs.008", "/pacs.028"])
@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b"this is not XML",
        b"",
        b"\xff\xfe<\x00D\x00",  # not UTF-8
        b"<Document><unclosed></Document>",
        b'<Document xmlns="urn:other"><x/></Document>',
    ],
    ids=["billion-laughs", "external-entity", "text", "empty", "utf16", "broken", "foreign"],
)
async def test_an_unreadable_body_is_refused_with_ff01(
    session: aiohttp.ClientSession, clearing: ClearingSimulator, path: str, body: bytes
) -> None:
    status, answer = await _post(session, clearing, path, body)
    assert status == 400
    assert answer.startswith(b"FF01")
    assert b"passwd" not in answer
    assert b"lollol" not in answer
    assert clearing.entries_count == 0


async def test_an_oversized_body_is_refused_before_it_is_parsed(
    session: aiohttp.ClientSession, clearing: ClearingSimulator
) -> None:
    body = b"<Document>" + b" " * MAX_MESSAGE_BYTES + b"</Document>"
    status, answer = await _post(session, clearing, "/pacs.008", body)
    assert status == 413
    assert str(MAX_MESSAGE_BYTES).encode() in answer


async def test_a_message_with_a_readable_id_gets_a_pacs002_refusing_it_whole(
    session: aiohttp.ClientSession, clearing: ClearingSimulator
) -> None:
    body = (
        f'<Document xmlns="{_PACS008}"><FIToFICstmrCdtTrf><GrpHdr><MsgId>BROKEN-1</MsgId>'
        "<CreDtTm>2026-12-02T08:00:00Z</CreDtTm></GrpHdr></FIToFICstmrCdtTrf></Document>"
    ).encode()
    status, answer = await _post(session, clearing, "/pacs.008", body)
    assert status == 400
    report = read_status_report(answer)
    assert report["original_message_id"] == "BROKEN-1"
    assert (report["group_status"], report["group_reason"]) == ("RJCT", "FF01")
    assert report["transactions"] == []


async def test_it_carries_on_after_hostile_input(
    session: aiohttp.ClientSession, clearing: ClearingSimulator, connector: Iso20022Connector
) -> None:
    for body in (BILLION_LAUGHS, EXTERNAL_ENTITY, b"\x00" * 100):
        await _post(session, clearing, "/pacs.008", body)
    answer = await connector.call("credit_transfer", transfer(LIU, "1.00"), timeout=10)
    assert answer["status"] == "ACSC"
    assert clearing.credited(LIU[1]) == 100
