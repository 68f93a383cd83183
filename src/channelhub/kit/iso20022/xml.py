"""Hostile XML, read safely: what every ISO 20022 reader here parses its bytes with.

A body from the network is hostile until proven otherwise: it must be UTF-8 without any
DOCTYPE or entity declaration before lxml sees it, lxml then parses with entities, DTDs, the
network and huge trees all off, and anything a DTD could have left behind is refused again.
The caller bounds the size first.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

__all__ = ["MessageRejected", "parse_hostile"]

# Declarations that only a DTD can carry: refused before parsing, whatever they declare.
_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST", b"<!NOTATION")


class MessageRejected(Exception):
    """The message as a whole cannot be processed.

    ``reason`` is the ISO 20022 status reason code (FF01 invalid file format); ``message_id``
    is None when not even the group header's message id could be read.
    """

    def __init__(self, detail: str, *, message_id: str | None = None, reason: str = "FF01"):
        super().__init__(detail)
        self.detail, self.message_id, self.reason = detail, message_id, reason


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_hostile(body: bytes) -> Any:
    """Parse ``body`` as hostile XML and return the root element.

    Raises:
        MessageRejected: not UTF-8, a DTD declaration or entity, or not well-formed (FF01).
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageRejected("the message is not UTF-8") from None
    if any(declaration in body for declaration in _DECLARATIONS):
        raise MessageRejected("a DOCTYPE or entity declaration is refused")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        raise MessageRejected(f"the message is not well-formed XML (line {error.lineno})") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise MessageRejected("a DOCTYPE or entity declaration is refused")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise MessageRejected("entity references are refused")
    return root
