"""The ATM and POS channel: ISO 8583:1987 over TCP (docs/atm.md).

``server`` listens and frames, ``processor`` turns a request into a canonical transaction and
its result into an answer, ``terminal`` a terminal that speaks it (the CLI's simulator and the
benchmark's). The wire itself is ``channelhub.kit.iso8583``, shared with the card-switch
connector.
"""

from channelhub.channels.iso8583.processor import MessageProcessor
from channelhub.channels.iso8583.server import Iso8583Server, ServerLimits

__all__ = ["Iso8583Server", "MessageProcessor", "ServerLimits"]
