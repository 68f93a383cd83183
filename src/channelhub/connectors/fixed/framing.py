"""The length prefix in front of each record on a TCP connection.

A record travels behind a 2- or 4-byte big-endian binary length. Some cores count the prefix
in the length (IMS's ``LL``), most do not: ``inclusive`` says which. The maximum record size
bounds what one frame may make the reader allocate. Timeouts are the caller's
(``asyncio.timeout`` around ``read_record``): the client bounds a whole call, a server bounds
a connection's silence and a started frame separately.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from channelhub.connectors.fixed.errors import FixedFrameError, LayoutError

__all__ = ["Framing", "read_record"]


@dataclass(frozen=True, slots=True)
class Framing:
    """How records are delimited on a connection."""

    #: 2 or 4 bytes of big-endian length.
    prefix_bytes: int = 2
    #: The largest record either side accepts.
    max_record_bytes: int = 4096
    #: Whether the length counts the prefix itself.
    inclusive: bool = False

    def __post_init__(self) -> None:
        if self.prefix_bytes not in (2, 4):
            raise LayoutError("the length prefix has 2 or 4 bytes")
        largest = 2 ** (8 * self.prefix_bytes) - 1 - (self.prefix_bytes if self.inclusive else 0)
        if not 1 <= self.max_record_bytes <= largest:
            raise LayoutError(f"the maximum record size is between 1 and {largest} bytes")

    def frame(self, record: bytes) -> bytes:
        """Return ``record`` behind its length prefix.

        Raises:
            FixedFrameError: the record is empty or longer than the maximum.
        """
        self.check_size(len(record))
        length = len(record) + (self.prefix_bytes if self.inclusive else 0)
        return length.to_bytes(self.prefix_bytes, "big") + record

    def check_size(self, size: int) -> None:
        """Refuse a record size outside 1..``max_record_bytes``.

        Raises:
            FixedFrameError: the size is out of bounds.
        """
        if not 1 <= size <= self.max_record_bytes:
            raise FixedFrameError(
                f"a record of {size} bytes (between 1 and {self.max_record_bytes})",
                details={"size": size},
            )


async def read_record(reader: asyncio.StreamReader, framing: Framing) -> bytes:
    """Read one record's bytes.

    Raises:
        FixedFrameError: the prefix announces an empty or too long record.
        asyncio.IncompleteReadError: the peer closed before or in the middle of a frame.
    """
    prefix = await reader.readexactly(framing.prefix_bytes)
    size = int.from_bytes(prefix, "big") - (framing.prefix_bytes if framing.inclusive else 0)
    framing.check_size(size)
    return await reader.readexactly(size)
