"""The ``fixed`` protocol: fixed-length records over TCP, the way mainframe cores talk
(docs/connectors.md).

``codec`` turns values into records and back (text in ASCII or EBCDIC 037, zoned and packed
decimals), ``framing`` delimits records with a length prefix, ``client`` calls a back end over
a pool of persistent connections, ``errors`` says what went wrong.
"""

from channelhub.connectors.fixed.client import FixedClient
from channelhub.connectors.fixed.codec import (
    Encoding,
    Field,
    FieldKind,
    Layout,
    Value,
    decode,
    encode,
    load_layouts,
)
from channelhub.connectors.fixed.errors import (
    FixedDecodeError,
    FixedEncodeError,
    FixedError,
    FixedFrameError,
    FixedGarbage,
    FixedTimeout,
    FixedUnavailable,
    LayoutError,
)
from channelhub.connectors.fixed.framing import Framing, read_record

__all__ = [
    "Encoding",
    "Field",
    "FieldKind",
    "FixedClient",
    "FixedDecodeError",
    "FixedEncodeError",
    "FixedError",
    "FixedFrameError",
    "FixedGarbage",
    "FixedTimeout",
    "FixedUnavailable",
    "Framing",
    "Layout",
    "LayoutError",
    "Value",
    "decode",
    "encode",
    "load_layouts",
    "read_record",
]
