"""The audit chain's arithmetic: each record's hash covers its fields and the previous hash.
Pure, so the chain can be checked anywhere from the rows alone."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["GENESIS", "record_hash"]

#: The ``prev_hash`` of the first record.
GENESIS = "0" * 64


def record_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Return the SHA-256 (hex) of ``prev_hash`` and ``fields`` in a canonical JSON form."""
    canonical = {
        key: (value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value)
        for key, value in fields.items()
    }
    body = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()
