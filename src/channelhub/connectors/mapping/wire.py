"""What a mapping puts on the wire, shown byte by byte (pure; ``channelhub mapping test``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channelhub.connectors.fixed import Framing, Layout

__all__ = ["ByteRange", "byte_ranges", "canonical_request"]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A run of bytes of a framed record and what it is: the length prefix or a field."""

    offset: int
    data: bytes
    #: The field's name, or ``(length)`` for the frame's prefix.
    field: str
    #: ``text``, ``zoned``, ``packed`` or ``prefix``.
    kind: str

    @property
    def hex(self) -> str:
        """Return the bytes as spaced hex pairs: ``C2 C9 D5 D8``."""
        return self.data.hex(" ").upper()


def byte_ranges(layout: Layout, record: bytes, framing: Framing | None = None) -> list[ByteRange]:
    """Split ``record`` (preceded by its length prefix when ``framing`` is given) into the
    byte ranges of the layout's fields, with offsets on the wire."""
    ranges: list[ByteRange] = []
    start = 0
    if framing is not None:
        prefix = framing.frame(record)[: framing.prefix_bytes]
        ranges.append(ByteRange(0, prefix, "(length)", "prefix"))
        start = framing.prefix_bytes
    for field in layout.fields:
        chunk = record[field.offset : field.end]
        ranges.append(ByteRange(start + field.offset, chunk, field.name, field.kind.value))
    return ranges


def canonical_request(
    payload: Mapping[str, Any],
    *,
    txn_id: uuid.UUID,
    now: dt.datetime,
    channel: str,
    **context: Any,
) -> dict[str, Any]:
    """Return the document a mapping's request expressions read: the service's payload as
    ``input``, the transaction's ``context`` beside it (``txn_id``, ``now`` in ISO 8601 UTC,
    ``channel`` and anything else given)."""
    return {
        "input": dict(payload),
        "context": {
            "txn_id": str(txn_id),
            "now": now.astimezone(dt.UTC).isoformat(),
            "channel": channel,
            **context,
        },
    }
