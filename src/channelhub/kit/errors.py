"""The root of every error channelhub raises on purpose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ChannelhubError"]


class ChannelhubError(Exception):
    """An expected failure with a stable machine code from the error-code catalog.

    ``code`` is what every interface maps to its wire (HTTP status, ISO 8583 field 39 ...);
    ``details`` names what failed (a field, an account, a limit) so a caller can act on it.
    The class name is never the wire code.
    """

    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
