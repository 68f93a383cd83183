"""Fixed-length records the way mainframe cores talk (docs/connectors.md, "The fixed protocol").

A record layout is a list of fields at fixed positions, declared as data (a mapping, e.g. read
from YAML) so that a mapping file can name it. Three kinds of field:

- ``text``: characters in the layout's encoding (``ascii``, or EBCDIC code page 037 through
  Python's ``cp037`` codec), padded with spaces on the right, right-trimmed on decode;
- ``zoned``: one digit a byte, the low nibble the digit, the high nibble the zone (``F`` in
  EBCDIC, ``3`` in ASCII); a signed field carries its sign in the last byte's zone, ``C``
  positive and ``D`` negative (``F`` is read as positive, unsigned);
- ``packed`` (COMP-3): two digits a byte, the last nibble the sign (``C``/``F`` positive, ``D``
  negative), so a field of n bytes holds 2n-1 digits.

Numbers are ``int`` — minor units when the field has a scale; the scale is part of the layout,
never a float. This module is pure: no I/O, so it is property-tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from channelhub.connectors.fixed.errors import FixedDecodeError, FixedEncodeError, LayoutError

__all__ = [
    "Encoding",
    "Field",
    "FieldKind",
    "Layout",
    "Value",
    "decode",
    "encode",
    "load_layouts",
]

#: What a field holds once decoded: text is ``str``, numbers ``int``.
Value = str | int

#: A record longer than this is a layout mistake, not a mainframe record.
MAX_RECORD_BYTES = 32_767
#: Packed fields above 16 bytes (31 digits) exceed what COBOL compilers allow.
MAX_PACKED_BYTES = 16
#: Zoned fields above 31 digits likewise.
MAX_ZONED_BYTES = 31


class Encoding(StrEnum):
    """How a layout's text is encoded."""

    ASCII = "ascii"
    CP037 = "cp037"

    @property
    def space(self) -> int:
        """Return the byte of a space (the padding)."""
        return " ".encode(self.value)[0]

    @property
    def digit_zone(self) -> int:
        """Return the zone nibble of an unsigned digit (F in EBCDIC, 3 in ASCII)."""
        return 0xF if self is Encoding.CP037 else 0x3


class FieldKind(StrEnum):
    """How a field's bytes hold its value."""

    TEXT = "text"
    ZONED = "zoned"
    PACKED = "packed"


_POSITIVE = 0xC
_NEGATIVE = 0xD
_UNSIGNED = 0xF


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a record: its name, where it sits and how its bytes hold its value."""

    name: str
    kind: FieldKind
    length: int
    offset: int
    #: Digits after the decimal point (numbers only): documents the minor unit, e.g. 2 for CNY.
    scale: int = 0
    #: Whether a number may be negative (an unsigned one carries the F sign).
    signed: bool = True

    @property
    def digits(self) -> int:
        """Return how many digits a number field holds (0 for text)."""
        if self.kind is FieldKind.PACKED:
            return 2 * self.length - 1
        if self.kind is FieldKind.ZONED:
            return self.length
        return 0

    @property
    def end(self) -> int:
        """Return the offset just past the field."""
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class Layout:
    """A record layout: named, in one encoding, its fields back to back from offset 0."""

    name: str
    encoding: Encoding
    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        """Return the record's length in bytes."""
        return self.fields[-1].end

    def field(self, name: str) -> Field:
        """Return the field called ``name``.

        Raises:
            KeyError: the layout has no such field.
        """
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    @classmethod
    def from_mapping(cls, name: str, spec: Mapping[str, Any]) -> Layout:
        """Build a layout from its description: ``{"encoding": ..., "fields": [...]}``.

        Each field is ``{"name", "kind", "length"}`` plus ``scale`` and ``signed`` for
        numbers.

        Raises:
            LayoutError: the description is incomplete or inconsistent.
        """
        if not isinstance(spec, Mapping):
            raise LayoutError(f"layout {name!r}: not a mapping")
        try:
            encoding = Encoding(spec.get("encoding", "ascii"))
        except ValueError:
            raise LayoutError(
                f"layout {name!r}: encoding is one of {', '.join(e.value for e in Encoding)}"
            ) from None
        entries = spec.get("fields")
        if not isinstance(entries, list) or not entries:
            raise LayoutError(f"layout {name!r}: needs a non-empty list of fields")
        fields: list[Field] = []
        offset = 0
        for entry in entries:
            field = _field(name, entry, offset)
            if any(f.name == field.name for f in fields):
                raise LayoutError(f"layout {name!r}: field {field.name!r} declared twice")
            fields.append(field)
            offset = field.end
        if offset > MAX_RECORD_BYTES:
            raise LayoutError(f"layout {name!r}: {offset} bytes (at most {MAX_RECORD_BYTES})")
        return cls(name=name, encoding=encoding, fields=tuple(fields))


def _field(layout: str, entry: Any, offset: int) -> Field:
    if not isinstance(entry, Mapping):
        raise LayoutError(f"layout {layout!r}: each field is a mapping")
    name, kind, length = entry.get("name"), entry.get("kind"), entry.get("length")
    where = f"layout {layout!r}, field {name!r}"
    if not isinstance(name, str) or not name:
        raise LayoutError(f"layout {layout!r}: a field without a name")
    unknown = set(entry) - {"name", "kind", "length", "scale", "signed"}
    if unknown:
        raise LayoutError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    try:
        field_kind = FieldKind(str(kind))
    except ValueError:
        raise LayoutError(
            f"{where}: kind is one of {', '.join(k.value for k in FieldKind)}"
        ) from None
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise LayoutError(f"{where}: length is a positive whole number of bytes")
    scale, signed = entry.get("scale", 0), entry.get("signed", True)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
        raise LayoutError(f"{where}: scale is a whole number >= 0")
    if not isinstance(signed, bool):
        raise LayoutError(f"{where}: signed is true or false")
    field = Field(name, field_kind, length, offset, scale, signed)
    if field_kind is FieldKind.TEXT and ("scale" in entry or "signed" in entry):
        raise LayoutError(f"{where}: a text field has no scale or sign")
    if field_kind is FieldKind.PACKED and length > MAX_PACKED_BYTES:
        raise LayoutError(f"{where}: a packed field has at most {MAX_PACKED_BYTES} bytes")
    if field_kind is FieldKind.ZONED and length > MAX_ZONED_BYTES:
        raise LayoutError(f"{where}: a zoned field has at most {MAX_ZONED_BYTES} bytes")
    if field_kind is not FieldKind.TEXT and scale > field.digits:
        raise LayoutError(f"{where}: scale {scale} exceeds its {field.digits} digits")
    return field


def load_layouts(text: str) -> dict[str, Layout]:
    """Read layouts from YAML: a mapping of layout name to its description.

    Raises:
        LayoutError: the YAML does not parse or a layout is not valid.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LayoutError(f"the layouts are not YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise LayoutError("the layouts are a mapping of name to layout")
    return {str(name): Layout.from_mapping(str(name), spec) for name, spec in document.items()}


# --- encoding ---------------------------------------------------------------------------------


def encode(layout: Layout, values: Mapping[str, Value]) -> bytes:
    """Encode one record; a field left out is blank (text) or zero (numbers).

    Raises:
        FixedEncodeError: a value is of the wrong type or does not fit its field, or a name is
            not a field of the layout.
    """
    unknown = set(values) - {f.name for f in layout.fields}
    if unknown:
        raise FixedEncodeError(sorted(unknown)[0], f"not a field of layout {layout.name!r}")
    record = bytearray()
    for field in layout.fields:
        value = values.get(field.name)
        if field.kind is FieldKind.TEXT:
            record += _encode_text(field, layout.encoding, "" if value is None else value)
        else:
            number = 0 if value is None else value
            if not isinstance(number, int) or isinstance(number, bool):
                raise FixedEncodeError(field.name, f"a number is an int, not {type(value)}")
            if number < 0 and not field.signed:
                raise FixedEncodeError(field.name, "an unsigned field refuses a negative number")
            if abs(number) >= 10**field.digits:
                raise FixedEncodeError(field.name, f"{number} has more than {field.digits} digits")
            if field.kind is FieldKind.PACKED:
                record += _encode_packed(field, number)
            else:
                record += _encode_zoned(field, layout.encoding, number)
    return bytes(record)


def _encode_text(field: Field, encoding: Encoding, value: Value) -> bytes:
    if not isinstance(value, str):
        raise FixedEncodeError(field.name, f"text is a str, not {type(value).__name__}")
    try:
        raw = value.encode(encoding.value)
    except UnicodeEncodeError as error:
        raise FixedEncodeError(
            field.name, f"character {value[error.start]!r} has no {encoding.value} code"
        ) from None
    if len(raw) > field.length:
        raise FixedEncodeError(field.name, f"{len(raw)} characters (at most {field.length})")
    return raw + bytes([encoding.space]) * (field.length - len(raw))


def _sign_nibble(field: Field, number: int) -> int:
    if not field.signed:
        return _UNSIGNED
    return _NEGATIVE if number < 0 else _POSITIVE


def _encode_packed(field: Field, number: int) -> bytes:
    digits = str(abs(number)).zfill(field.digits)
    nibbles = [int(d) for d in digits] + [_sign_nibble(field, number)]
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2))


def _encode_zoned(field: Field, encoding: Encoding, number: int) -> bytes:
    digits = str(abs(number)).zfill(field.digits)
    zone = encoding.digit_zone
    raw = bytearray((zone << 4) | int(d) for d in digits)
    if field.signed:
        raw[-1] = (_sign_nibble(field, number) << 4) | (raw[-1] & 0x0F)
    return bytes(raw)


# --- decoding ---------------------------------------------------------------------------------


def decode(layout: Layout, data: bytes) -> dict[str, Value]:
    """Decode one record into its fields' values.

    Raises:
        FixedDecodeError: the record's length is not the layout's, or a field's bytes are not
            a value of its kind (named with its offset).
    """
    if len(data) != layout.size:
        # A short record names the first field it cuts off; a long one, what follows the last.
        cut = next((f.name for f in layout.fields if f.end > len(data)), "(after the record)")
        raise FixedDecodeError(
            cut,
            min(len(data), layout.size),
            f"the record has {len(data)} bytes, layout {layout.name!r} has {layout.size}",
        )
    values: dict[str, Value] = {}
    for field in layout.fields:
        chunk = data[field.offset : field.end]
        if field.kind is FieldKind.TEXT:
            values[field.name] = _decode_text(field, layout.encoding, chunk)
        elif field.kind is FieldKind.PACKED:
            values[field.name] = _decode_packed(field, chunk)
        else:
            values[field.name] = _decode_zoned(field, layout.encoding, chunk)
    return values


def _decode_text(field: Field, encoding: Encoding, chunk: bytes) -> str:
    try:
        text = chunk.decode(encoding.value)
    except UnicodeDecodeError as error:
        raise FixedDecodeError(
            field.name,
            field.offset + error.start,
            f"byte {chunk[error.start]:#04x} is not {encoding.value}",
        ) from None
    return text.rstrip(" ")


def _decode_sign(field: Field, nibble: int, offset: int) -> int:
    if nibble == _NEGATIVE and field.signed:
        return -1
    if nibble in (_POSITIVE, _UNSIGNED):
        return 1
    expected = "C, D or F" if field.signed else "C or F"
    raise FixedDecodeError(field.name, offset, f"sign nibble {nibble:X} (expected {expected})")


def _decode_packed(field: Field, chunk: bytes) -> int:
    number = 0
    for index, byte in enumerate(chunk):
        high, low = byte >> 4, byte & 0x0F
        last = index == len(chunk) - 1
        for nibble in (high,) if last else (high, low):
            if nibble > 9:
                raise FixedDecodeError(
                    field.name, field.offset + index, f"nibble {nibble:X} is not a digit"
                )
            number = number * 10 + nibble
    sign = _decode_sign(field, chunk[-1] & 0x0F, field.end - 1)
    return sign * number


def _decode_zoned(field: Field, encoding: Encoding, chunk: bytes) -> int:
    number = 0
    zone = encoding.digit_zone
    for index, byte in enumerate(chunk):
        high, low = byte >> 4, byte & 0x0F
        if low > 9:
            raise FixedDecodeError(
                field.name, field.offset + index, f"byte {byte:#04x}: {low:X} is not a digit"
            )
        last = index == len(chunk) - 1
        if not last and high != zone:
            raise FixedDecodeError(
                field.name,
                field.offset + index,
                f"byte {byte:#04x}: zone {high:X} (expected {zone:X})",
            )
        number = number * 10 + low
    last_zone = chunk[-1] >> 4
    if last_zone == zone:
        return number
    return _decode_sign(field, last_zone, field.end - 1) * number
