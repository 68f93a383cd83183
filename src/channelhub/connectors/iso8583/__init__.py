"""The ``iso8583`` connector: ISO 8583:1987 over TCP to a card switch (docs/connectors.md).

The wire itself (``default_ascii`` layout, 2-byte length prefix) is ``channelhub.kit.iso8583``,
which the ATM and POS channel speaks too.
"""

from channelhub.connectors.iso8583.client import (
    OPERATIONS,
    Iso8583Connector,
    Iso8583RequestError,
    Reversal,
    SwitchOperation,
)

__all__ = [
    "OPERATIONS",
    "Iso8583Connector",
    "Iso8583RequestError",
    "Reversal",
    "SwitchOperation",
]
