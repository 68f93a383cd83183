"""Mappings: declarative, file-based translations between a service's canonical request and
response and a back end's message, with JMESPath expressions, formatters and code tables
(docs/connectors.md, "Mappings").

``load`` reads and checks a mapping file, ``model`` runs it, ``formats`` holds the
formatters, ``wire`` shows a fixed record byte by byte, ``errors`` says what went wrong.
"""

from channelhub.connectors.mapping.errors import MappedRefusal, MappingError, MappingInputError
from channelhub.connectors.mapping.formats import FORMATTERS
from channelhub.connectors.mapping.load import (
    bundled_mappings,
    follow_up_path,
    load_mapping,
    parse_mapping,
    resolve,
)
from channelhub.connectors.mapping.model import FieldRule, Mapping, ResultRule
from channelhub.connectors.mapping.wire import ByteRange, byte_ranges, canonical_request

__all__ = [
    "FORMATTERS",
    "ByteRange",
    "FieldRule",
    "MappedRefusal",
    "Mapping",
    "MappingError",
    "MappingInputError",
    "ResultRule",
    "bundled_mappings",
    "byte_ranges",
    "canonical_request",
    "follow_up_path",
    "load_mapping",
    "parse_mapping",
    "resolve",
]
