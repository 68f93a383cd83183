"""Hostile and broken input on the ATM and POS channel: truncated and oversized frames,
bitmaps that promise absent fields, bad fields, unknown MTIs, terminals and processing codes,
stalled peers, a fuzzer. Each gets field 39 = 30 (12 for an unknown processing code) or a
closed connection; the server goes on serving and no account moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelhub.kit import iso8583 as codec
from tests.channels_iso8583.conftest import ALICE_PAN, PIN, AtmNode, atm_node, atm_settings

pytestmark = pytest.mark.asyncio

WAIT = 30.0  # generous: a failure here means a hang, not slowness


#: An 0800 whose secondary bitmap's first bit announces a third bitmap (atheris's find).
THIRD_BITMAP = (
    b"0800800000400000000080000004000000000000011000000000112021357501398341357501202AT6A8CC5A9"
)


async def test_the_decoder_refuses_fields_past_128_as_undecodable() -> None:
    # pyiso8583 itself raises KeyError here; the channel's decoder says what it is.
    with pytest.raises(codec.Undecodable, match="not in the specification"):
        codec.decode(THIRD_BITMAP)


async def _exchange(atm: AtmNode, raw: bytes) -> bytes | None:
    """Send raw bytes; return the answer's body, or None if the server closed instead."""
    reader, writer = await asyncio.open_connection(atm.host, atm.port)
    try:
        writer.write(raw)
        await writer.drain()
        try:
            async with asyncio.timeout(WAIT):
                prefix = await reader.readexactly(2)
                return await reader.readexactly(int.from_bytes(prefix, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


async def _code(atm: AtmNode, fields: dict[str, str], terminal: str = "POS00001") -> str:
    device = atm.terminal(terminal)
    body = await _exchange(atm, codec.frame(device.pack(fields)))
    assert body is not None
    return codec.decode(body)["39"]


async def _still_serving(atm: AtmNode) -> None:
    async with atm.connected() as device:
        assert (await device.send(device.echo())).code == "00"


async def test_broken_frames_close_the_connection(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    device = atm.terminal("POS00001")
    valid = device.pack(device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100))
    # A frame announcing more than it carries, then the peer stops sending.
    reader, writer = await asyncio.open_connection(atm.host, atm.port)
    writer.write(codec.frame(valid)[:20])
    writer.write_eof()
    async with asyncio.timeout(WAIT):
        assert await reader.read() == b""
    writer.close()
    # A length prefix beyond the maximum, and an empty frame.
    assert await _exchange(atm, b"\xff\xff" + valid) is None
    assert await _exchange(atm, b"\x00\x00") is None
    # A bitmap that announces fields which are not there (the frame's length is right).
    cut = valid[: len(valid) // 2]
    assert await _exchange(atm, codec.frame(cut)) is None
    # Not a message at all.
    assert await _exchange(atm, codec.frame(b"GET / HTTP/1.1\r\n\r\n")) is None
    # A secondary bitmap whose first bit announces a third one: fields past 128, which no
    # specification has (atheris found the decoder's KeyError on this one).
    assert await _exchange(atm, codec.frame(THIRD_BITMAP)) is None
    await _still_serving(atm)
    assert await atm.bank.balance(account) == before


async def test_bad_fields_answer_format_error(atm: AtmNode) -> None:
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    device = atm.terminal("POS00001")

    def purchase(**changes: str) -> dict[str, str]:
        fields = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100)
        fields.update(changes)
        return {key: value for key, value in fields.items() if value != "-"}

    assert await _code(atm, purchase(**{"4": "00000000AB12"})) == "30"  # non-numeric amount
    assert await _code(atm, purchase(**{"49": "999"})) == "30"  # unknown currency
    assert await _code(atm, purchase(**{"52": "-"})) == "30"  # no PIN block
    assert await _code(atm, purchase(**{"52": "ZZZZZZZZZZZZZZZZ"})) == "30"
    assert await _code(atm, purchase(**{"11": "12345X"})) == "30"
    assert await _code(atm, purchase(**{"2": "12AB"})) == "30"
    assert await _code(atm, purchase(**{"3": "990000"})) == "12"  # unknown processing code
    assert await _code(atm, purchase(t="0300")) == "30"  # unknown MTI
    reversal = device.reversal(purchase())
    reversal["90"] = "0500" + reversal["90"][4:]
    assert await _code(atm, reversal) == "30"  # reversal of something not reversible
    # An unknown terminal cannot be authenticated.
    assert await _code(atm, purchase(**{"41": "ATM09999"}), terminal="ATM09999") == "63"
    await _still_serving(atm)
    assert await atm.bank.balance(account) == before


async def test_pipelined_requests_on_one_connection(atm: AtmNode) -> None:
    async with atm.connected() as device:
        requests = [device.financial("balance", pan=ALICE_PAN, pin=PIN) for _ in range(20)]
        answers = await asyncio.gather(*(device.send(request) for request in requests))
    assert [answer.fields["11"] for answer in answers] == [r["11"] for r in requests]
    assert {answer.code for answer in answers} == {"00"}


async def test_many_terminals_at_once(atm: AtmNode) -> None:
    async def one(index: int) -> list[str]:
        device = atm.terminal()
        device._stan = index * 1000  # distinct STANs: every message is its own
        await device.connect(atm.host, atm.port)
        try:
            return [
                (await device.send(device.financial("balance", pan=ALICE_PAN, pin=PIN))).code
                for _ in range(3)
            ]
        finally:
            await device.close()

    results = await asyncio.gather(*(one(index) for index in range(40)))
    assert {code for codes in results for code in codes} == {"00"}


@pytest.fixture
async def impatient(database_url: str, tmp_path: Path) -> AsyncIterator[AtmNode]:
    """A node that gives a frame half a second and a silent peer a second."""
    options = {"read_timeout_seconds": 0.5, "idle_timeout_seconds": 1.0}
    async with atm_node(atm_settings(database_url, tmp_path, **options)) as node:
        yield node


async def test_a_stalled_peer_blocks_nobody_and_is_dropped(impatient: AtmNode) -> None:
    stalled_reader, stalled = await asyncio.open_connection(impatient.host, impatient.port)
    stalled.write(b"\x00")  # half a length prefix, then nothing
    silent_reader, silent = await asyncio.open_connection(impatient.host, impatient.port)
    await _still_serving(impatient)
    async with asyncio.timeout(WAIT):
        assert await stalled_reader.read() == b""  # closed by the read timeout
        assert await silent_reader.read() == b""  # closed by the idle timeout
    for writer in (stalled, silent):
        writer.close()
    await _still_serving(impatient)


_MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 400), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 400), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.integers(0, 255)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    noise=st.binary(max_size=300),
    mutations=st.lists(_MUTATIONS, min_size=1, max_size=4),
    junk_amount=st.text(
        st.characters(min_codepoint=32, max_codepoint=126), min_size=12, max_size=12
    ),
    prefix=st.integers(0, 0xFFFF),
)
async def test_fuzzed_frames_never_crash_hang_or_move_money(
    impatient: AtmNode,
    noise: bytes,
    mutations: list[tuple[str, int, int]],
    junk_amount: str,
    prefix: int,
) -> None:
    atm = impatient  # a frame shorter than its prefix is given up quickly
    account = await atm.account_of(ALICE_PAN)
    before = await atm.bank.balance(account)
    device = atm.terminal("POS00001")
    # Random bytes in a frame, and behind a random length prefix.
    for raw in (codec.frame(noise) if noise else b"\x00\x01x", prefix.to_bytes(2, "big") + noise):
        answer = await _exchange(atm, raw)
        if answer is not None:
            assert codec.decode(answer)["39"] != "00"
    # A valid purchase, mutated after its MAC: refused or not a message at all.
    original = device.pack(device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100))
    body = bytearray(original)
    for kind, position, value in mutations:
        if not body:
            break
        position %= len(body)
        if kind == "flip":
            body[position] ^= value
        elif kind == "cut":
            del body[position:]
        else:
            body.insert(position, value)
    # Hex digits are hex digits in either case: a MAC whose letters changed case is the same
    # MAC of the same, valid message, which would rightly be executed.
    same = bytes(body).upper() == original.upper()
    if body and not same:
        answer = await _exchange(atm, codec.frame(bytes(body)))
        if answer is not None:
            assert codec.decode(answer)["39"] != "00"
    # A well-MACed purchase whose amount is not digits.
    if not junk_amount.isdigit():
        fields = device.financial("purchase", pan=ALICE_PAN, pin=PIN, amount_minor=100)
        fields["4"] = junk_amount
        assert await _code(atm, fields) == "30"
    assert await atm.bank.balance(account) == before


async def test_an_echo_without_a_mac_is_answered_without_one(atm: AtmNode) -> None:
    # Whoever knows a terminal id may send an echo; the node must not MAC what they chose.
    device = atm.terminal("ATM00001")
    echo = device.echo()
    echo["70"] = "301"
    body = await _exchange(atm, codec.frame(codec.encode_with_mac(dict(echo))))
    assert body is not None
    answer = codec.decode(body)
    assert (answer["t"], answer["39"]) == ("0810", "00")
    assert "64" not in answer
    assert "128" not in answer
