"""The ``iso20022`` connector: pacs.008 credit transfers and pacs.028 status requests over
HTTP(S) to a clearing house, pacs.002 answers back (docs/connectors.md).

The messages themselves are ``channelhub.kit.iso20022``, which the interbank channel and the
simulated clearing house read and write too.
"""

from channelhub.connectors.iso20022.client import (
    OPERATIONS,
    ClearingOperation,
    Iso20022Connector,
    Iso20022RequestError,
)

__all__ = ["OPERATIONS", "ClearingOperation", "Iso20022Connector", "Iso20022RequestError"]
