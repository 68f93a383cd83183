"""What can go wrong with fixed-length records and the back ends that speak them.

Codec errors name the field (and, decoding, the byte offset) so that whoever wrote the layout
or the mapping can find the fault. Client errors say whether the request left this process:
after a request that changes money, ``request_sent=True`` means the back end may have applied
it — the caller must treat the outcome as in doubt, never as failed.
"""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "FixedDecodeError",
    "FixedEncodeError",
    "FixedError",
    "FixedFrameError",
    "FixedGarbage",
    "FixedTimeout",
    "FixedUnavailable",
    "LayoutError",
]


class FixedError(ChannelhubError):
    """The root of every error of the fixed-record protocol."""


class LayoutError(FixedError):
    """A record layout's description is not valid (a configuration mistake)."""

    code = "INTERNAL_ERROR"


class FixedEncodeError(FixedError):
    """A value does not fit its field: too many digits, too long, or not encodable."""

    code = "VALIDATION_FAILED"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}", details={"field": field})
        self.field = field
        self.reason = reason


class FixedDecodeError(FixedError):
    """Bytes are not a record of the layout: a bad length, nibble, zone or character."""

    code = "MALFORMED_REQUEST"

    def __init__(self, field: str, offset: int, reason: str) -> None:
        super().__init__(
            f"field {field!r} at offset {offset}: {reason}",
            details={"field": field, "offset": offset},
        )
        self.field = field
        self.offset = offset
        self.reason = reason


class FixedFrameError(FixedError):
    """A length prefix announces an empty record or more than the connection accepts."""

    code = "MALFORMED_REQUEST"


class FixedTimeout(FixedError):
    """The back end did not answer within the call's timeout; the connection was discarded."""

    code = "BACKEND_TIMEOUT"

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message, details={"request_sent": request_sent})
        self.request_sent = request_sent


class FixedUnavailable(FixedError):
    """The back end refused the connection or closed it before answering."""

    code = "BACKEND_UNAVAILABLE"

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message, details={"request_sent": request_sent})
        self.request_sent = request_sent


class FixedGarbage(FixedError):
    """The back end answered bytes that are not a record of the expected layout.

    The request was sent and may have been applied: the outcome is in doubt.
    """

    code = "BACKEND_BAD_RESPONSE"
    request_sent = True

    def __init__(self, message: str, *, cause: FixedError) -> None:
        details = {"request_sent": True, **cause.details}
        super().__init__(message, details=details)
        self.cause = cause
