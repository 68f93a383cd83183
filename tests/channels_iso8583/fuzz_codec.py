"""An atheris harness for the ISO 8583 codec: run as a script (``python fuzz_codec.py -runs=N
CORPUS``), by the test beside it where atheris installs. Any bytes given to the channel's
decoder and field checks end in a message or in the refusal the channel answers (Undecodable:
the connection is closed; FormatError: field 39 = 30), never in another exception;
and what decodes packs again to the same fields."""

from __future__ import annotations

import contextlib
import sys

import atheris

# Only the wire is instrumented: the package's other modules (the kernel, SQLAlchemy) would
# take a minute to instrument and are not what this fuzzes.
with atheris.instrument_imports(include=["iso8583", "channelhub.kit.iso8583"]):
    import iso8583

    from channelhub.kit import iso8583 as codec


def one_input(data: bytes) -> None:
    """Decode ``data`` as the server does, then run every check the channel makes of it."""
    try:
        fields = codec.decode(data)
    except codec.Undecodable:
        return
    codec.response_mti(fields.get("t", ""))
    codec.mac_field(fields)
    codec.balances_of(fields.get("54", ""))
    for check in (codec.currency_of, codec.amount_of):
        with contextlib.suppress(codec.FormatError):
            check(fields)
    # What decoded packs again, to the same fields (an answer echoes some of them); a field
    # that decoded but cannot go back out is the processor's minimal answer, never a crash.
    try:
        packed = codec.encode_with_mac(dict(fields))
    except iso8583.EncodeError:
        return
    again = codec.decode(packed)
    for key, value in fields.items():
        if key not in ("p", "h", "1") and again.get(key) != value:
            raise AssertionError(f"field {key} changed through encode and decode")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
