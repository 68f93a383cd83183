"""Partner request signing. Pure.

``X-Signature`` is the lowercase hex HMAC-SHA256, keyed with the app's secret, of

    METHOD \\n PATH \\n QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

with QUERY empty when there is none. docs/partners.md works an example through.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MAX_SKEW_SECONDS", "sign", "string_to_sign", "timestamp_fresh", "verify"]

#: How far a request's timestamp may be from the server's clock, either way.
MAX_SKEW_SECONDS = 300


def string_to_sign(
    method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """Return the text a request's signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, query, timestamp, nonce, digest))


def sign(
    secret: str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """Return the request's ``X-Signature``."""
    text = string_to_sign(method, path, query, timestamp, nonce, body)
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def verify(
    secret: str,
    signature: str,
    method: str,
    path: str,
    query: str,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> bool:
    """Tell, in constant time, whether ``signature`` signs this request."""
    expected = sign(secret, method, path, query, timestamp, nonce, body)
    return hmac.compare_digest(expected, signature)


def timestamp_fresh(timestamp: str, now: float) -> bool:
    """Tell whether ``timestamp`` (Unix seconds, digits only) is within the allowed skew."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now) <= MAX_SKEW_SECONDS
