"""Fixed-length records: encode then decode is the identity, bad bytes are refused by name."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from channelhub.connectors.fixed import (
    Encoding,
    FixedDecodeError,
    FixedEncodeError,
    FixedFrameError,
    Framing,
    Layout,
    LayoutError,
    decode,
    encode,
    load_layouts,
    read_record,
)

#: Every field under test sits behind this 3-byte text field, so offsets are not trivially 0.
PREFIX = {"name": "tag", "kind": "text", "length": 3}


def layout(encoding: str, **field: object) -> Layout:
    """Return a layout of the 3-byte tag and one field called ``value``."""
    return Layout.from_mapping(
        "test", {"encoding": encoding, "fields": [PREFIX, {"name": "value", **field}]}
    )


encodings = st.sampled_from(["ascii", "cp037"])


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, int, str]:
    encoding = draw(encodings)
    length = draw(st.integers(1, 40))
    top = 127 if encoding == "ascii" else 255
    value = draw(st.text(st.characters(min_codepoint=0, max_codepoint=top), max_size=length))
    # Decoding right-trims the padding: a value's own trailing spaces are not kept.
    return encoding, length, value.rstrip(" ")


@given(texts())
@example(("cp037", 1, ""))
@example(("cp037", 5, "ÄÖÜé"))
def test_text_round_trips(case: tuple[str, int, str]) -> None:
    encoding, length, value = case
    record_layout = layout(encoding, kind="text", length=length)
    record = encode(record_layout, {"tag": "ABC", "value": value})
    assert len(record) == 3 + length
    assert decode(record_layout, record) == {"tag": "ABC", "value": value}


@st.composite
def numbers(draw: st.DrawFn, kind: str) -> tuple[str, int, bool, int]:
    encoding = draw(encodings)
    length = draw(st.integers(1, 16 if kind == "packed" else 31))
    signed = draw(st.booleans())
    digits = 2 * length - 1 if kind == "packed" else length
    top = 10**digits - 1
    edges = st.sampled_from([0, top, -top if signed else 0, 1, -1 if signed else 1])
    value = draw(edges | st.integers(-top if signed else 0, top))
    return encoding, length, signed, value


@given(numbers("packed"))
def test_packed_round_trips(case: tuple[str, int, bool, int]) -> None:
    encoding, length, signed, value = case
    record_layout = layout(encoding, kind="packed", length=length, signed=signed)
    record = encode(record_layout, {"value": value})
    assert len(record) == 3 + length
    assert decode(record_layout, record)["value"] == value


@given(numbers("zoned"))
def test_zoned_round_trips(case: tuple[str, int, bool, int]) -> None:
    encoding, length, signed, value = case
    record_layout = layout(encoding, kind="zoned", length=length, signed=signed)
    record = encode(record_layout, {"value": value})
    assert len(record) == 3 + length
    assert decode(record_layout, record)["value"] == value


def test_the_bytes_are_ibms() -> None:
    record_layout = Layout.from_mapping(
        "example",
        {
            "encoding": "cp037",
            "fields": [
                {"name": "code", "kind": "text", "length": 4},
                {"name": "zoned", "kind": "zoned", "length": 3},
                {"name": "packed", "kind": "packed", "length": 4, "scale": 2},
                {"name": "unsigned", "kind": "packed", "length": 2, "signed": False},
            ],
        },
    )
    record = encode(record_layout, {"code": "AB", "zoned": -123, "packed": 1234567, "unsigned": 5})
    assert record.hex(" ") == "c1 c2 40 40 f1 f2 d3 12 34 56 7c 00 5f"
    assert encode(record_layout, {"zoned": 123, "packed": -1250}).hex(" ") == (
        "40 40 40 40 f1 f2 c3 00 01 25 0d 00 0f"
    )
    ascii_zoned = layout("ascii", kind="zoned", length=3)
    assert encode(ascii_zoned, {"value": -45})[3:].hex(" ") == "30 34 d5"
    # F in the last zone is read as positive, as IBM's unsigned fields write it.
    assert decode(record_layout, bytes.fromhex("c1c24040f1f2f30000001c000f"))["zoned"] == 123


@given(numbers("packed"), st.data())
def test_a_packed_field_with_a_bad_digit_nibble_is_refused(
    case: tuple[str, int, bool, int], data: st.DataObject
) -> None:
    encoding, length, signed, value = case
    record_layout = layout(encoding, kind="packed", length=length, signed=signed)
    record = bytearray(encode(record_layout, {"value": value}))
    nibble = data.draw(st.integers(0, 2 * length - 2))  # any digit, not the sign
    position = 3 + nibble // 2
    bad = data.draw(st.integers(0xA, 0xF))
    if nibble % 2 == 0:
        record[position] = (bad << 4) | (record[position] & 0x0F)
    else:
        record[position] = (record[position] & 0xF0) | bad
    with pytest.raises(FixedDecodeError) as refused:
        decode(record_layout, bytes(record))
    assert refused.value.field == "value"
    assert refused.value.offset == position
    assert "'value'" in str(refused.value)


@pytest.mark.parametrize("sign", [0x0, 0x5, 0x9, 0xA, 0xB, 0xE])
def test_a_packed_field_with_a_bad_sign_is_refused(sign: int) -> None:
    record_layout = layout("cp037", kind="packed", length=3)
    record = bytearray(encode(record_layout, {"value": 12345}))
    record[-1] = (record[-1] & 0xF0) | sign
    with pytest.raises(FixedDecodeError, match="sign nibble") as refused:
        decode(record_layout, bytes(record))
    assert (refused.value.field, refused.value.offset) == ("value", 5)


def test_an_unsigned_field_refuses_the_negative_sign() -> None:
    record_layout = layout("cp037", kind="packed", length=2, signed=False)
    with pytest.raises(FixedDecodeError, match="sign nibble D"):
        decode(record_layout, encode(record_layout, {})[:3] + bytes.fromhex("001d"))
    with pytest.raises(FixedEncodeError, match="unsigned"):
        encode(record_layout, {"value": -1})


@given(numbers("zoned"), st.data())
def test_a_zoned_field_with_a_bad_byte_is_refused(
    case: tuple[str, int, bool, int], data: st.DataObject
) -> None:
    encoding, length, signed, value = case
    record_layout = layout(encoding, kind="zoned", length=length, signed=signed)
    record = bytearray(encode(record_layout, {"value": value}))
    index = data.draw(st.integers(0, length - 1))
    if data.draw(st.booleans()) or index == length - 1:
        record[3 + index] = (record[3 + index] & 0xF0) | data.draw(st.integers(0xA, 0xF))
    else:
        zone = 0xF if encoding == "cp037" else 0x3
        bad_zone = data.draw(st.integers(0, 0xF).filter(lambda z: z != zone))
        record[3 + index] = (bad_zone << 4) | (record[3 + index] & 0x0F)
    with pytest.raises(FixedDecodeError) as refused:
        decode(record_layout, bytes(record))
    assert (refused.value.field, refused.value.offset) == ("value", 3 + index)


def test_ascii_text_refuses_bytes_above_127() -> None:
    record_layout = layout("ascii", kind="text", length=4)
    with pytest.raises(FixedDecodeError, match="0xc1 is not ascii") as refused:
        decode(record_layout, b"ABCab\xc1d")
    assert (refused.value.field, refused.value.offset) == ("value", 5)


@pytest.mark.parametrize("size", [0, 6, 8, 100])
def test_a_record_of_the_wrong_length_is_refused(size: int) -> None:
    record_layout = layout("cp037", kind="packed", length=4)
    with pytest.raises(FixedDecodeError, match=f"has {size} bytes"):
        decode(record_layout, bytes(size))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ({"kind": "packed", "length": 2}, 1000, "more than 3 digits"),
        ({"kind": "packed", "length": 2}, -1000, "more than 3 digits"),
        ({"kind": "zoned", "length": 2}, 100, "more than 2 digits"),
        ({"kind": "packed", "length": 2}, 1.5, "is an int"),
        ({"kind": "packed", "length": 2}, True, "is an int"),
        ({"kind": "packed", "length": 2}, "12", "is an int"),
        ({"kind": "text", "length": 2}, "ABC", "3 characters"),
        ({"kind": "text", "length": 2}, 12, "is a str"),
        ({"kind": "text", "length": 8}, "余额", "no cp037 code"),
    ],
)
def test_values_that_do_not_fit_are_refused_by_field(
    field: dict[str, object], value: object, reason: str
) -> None:
    record_layout = layout("cp037", **field)
    with pytest.raises(FixedEncodeError, match=reason) as refused:
        encode(record_layout, {"value": value})  # type: ignore[dict-item]
    assert refused.value.field == "value"
    assert refused.value.code == "VALIDATION_FAILED"


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(FixedEncodeError, match="not a field") as refused:
        encode(layout("ascii", kind="text", length=2), {"valu": "x"})
    assert refused.value.field == "valu"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"fields": []}, "non-empty list"),
        ({"encoding": "utf-8", "fields": [PREFIX]}, "encoding is one of"),
        ({"fields": [PREFIX, PREFIX]}, "declared twice"),
        ({"fields": [{"name": "x", "kind": "binary", "length": 2}]}, "kind is one of"),
        ({"fields": [{"name": "x", "kind": "text", "length": 0}]}, "positive"),
        ({"fields": [{"name": "x", "kind": "packed", "length": 17}]}, "at most 16"),
        ({"fields": [{"name": "x", "kind": "zoned", "length": 32}]}, "at most 31"),
        ({"fields": [{"name": "x", "kind": "packed", "length": 2, "scale": 4}]}, "exceeds"),
        ({"fields": [{"name": "x", "kind": "text", "length": 2, "scale": 2}]}, "no scale"),
        ({"fields": [{"name": "x", "kind": "text", "length": 2, "pic": "X"}]}, "unknown keys"),
        ({"fields": [{"kind": "text", "length": 2}]}, "without a name"),
        ({"fields": [{"name": "x", "kind": "text", "length": 40_000}]}, "at most 32767"),
    ],
)
def test_bad_layouts_are_refused(spec: dict[str, object], reason: str) -> None:
    with pytest.raises(LayoutError, match=reason):
        Layout.from_mapping("bad", spec)


def test_layouts_load_from_yaml() -> None:
    layouts = load_layouts(
        "greeting:\n  encoding: cp037\n  fields:\n"
        "    - {name: text, kind: text, length: 5}\n"
        "    - {name: amount, kind: packed, length: 3, scale: 2}\n"
    )
    greeting = layouts["greeting"]
    assert greeting.encoding is Encoding.CP037
    assert greeting.size == 8
    assert greeting.field("amount").offset == 5
    assert greeting.field("amount").digits == 5
    with pytest.raises(LayoutError, match="not YAML"):
        load_layouts("a: [")
    with pytest.raises(LayoutError, match="mapping of name"):
        load_layouts("- a")


@pytest.mark.parametrize(
    ("framing", "prefix"),
    [
        (Framing(prefix_bytes=2), b"\x00\x05"),
        (Framing(prefix_bytes=4), b"\x00\x00\x00\x05"),
        (Framing(prefix_bytes=2, inclusive=True), b"\x00\x07"),
    ],
)
async def test_framing_round_trips(framing: Framing, prefix: bytes) -> None:
    framed = framing.frame(b"HELLO")
    assert framed == prefix + b"HELLO"
    reader = asyncio.StreamReader()
    reader.feed_data(framed + framed)
    assert await read_record(reader, framing) == b"HELLO"
    assert await read_record(reader, framing) == b"HELLO"


async def test_framing_refuses_empty_and_oversized_records() -> None:
    framing = Framing(prefix_bytes=2, max_record_bytes=10)
    with pytest.raises(FixedFrameError):
        framing.frame(b"")
    with pytest.raises(FixedFrameError):
        framing.frame(bytes(11))
    for prefix in (b"\x00\x00", b"\x00\x0b", b"\xff\xff"):
        reader = asyncio.StreamReader()
        reader.feed_data(prefix + bytes(20))
        with pytest.raises(FixedFrameError):
            await read_record(reader, framing)
    with pytest.raises(LayoutError):
        Framing(prefix_bytes=3)
    with pytest.raises(LayoutError):
        Framing(prefix_bytes=2, max_record_bytes=70_000)


@st.composite
def records(draw: st.DrawFn) -> tuple[Layout, dict[str, str | int]]:
    """A layout of several fields of every kind, and values that fit it."""
    encoding = draw(encodings)
    count = draw(st.integers(1, 8))
    fields: list[dict[str, object]] = []
    values: dict[str, str | int] = {}
    for n in range(count):
        kind = draw(st.sampled_from(["text", "zoned", "packed"]))
        length = draw(st.integers(1, 16))
        name = f"f{n}"
        if kind == "text":
            top = 127 if encoding == "ascii" else 255
            alphabet = st.characters(min_codepoint=0, max_codepoint=top)
            values[name] = draw(st.text(alphabet, max_size=length)).rstrip(" ")
            fields.append({"name": name, "kind": kind, "length": length})
        else:
            signed = draw(st.booleans())
            digits = 2 * length - 1 if kind == "packed" else length
            top_value = 10**digits - 1
            values[name] = draw(st.integers(-top_value if signed else 0, top_value))
            fields.append({"name": name, "kind": kind, "length": length, "signed": signed})
    return Layout.from_mapping("random", {"encoding": encoding, "fields": fields}), values


@given(records())
def test_whole_records_round_trip(case: tuple[Layout, dict[str, str | int]]) -> None:
    record_layout, values = case
    record = encode(record_layout, values)
    assert len(record) == record_layout.size
    assert decode(record_layout, record) == values
