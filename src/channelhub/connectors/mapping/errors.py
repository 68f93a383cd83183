"""What can go wrong with a mapping: a file that does not load, an input it cannot map, an
answer it cannot read, and a back end's refusal translated by the code table.

A bad mapping file is a configuration mistake found when it loads, never while a customer
waits: ``MappingError`` names the file, the field and, for an expression, the position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelhub.connectors.base import ConnectorError
from channelhub.kit.errors import ChannelhubError

__all__ = ["MappedRefusal", "MappingError", "MappingInputError"]


class MappingError(ChannelhubError):
    """A mapping file is not valid: unknown keys, an expression that does not compile, a
    formatter, canonical code or layout that does not exist."""

    code = "INTERNAL_ERROR"

    def __init__(self, file: str, where: str, reason: str, *, position: int | None = None) -> None:
        at = f" at column {position}" if position is not None else ""
        super().__init__(
            f"{file}: {where}{at}: {reason}",
            details={"file": file, "field": where, **({"position": position} if at else {})},
        )
        self.file = file
        self.where = where
        self.reason = reason
        self.position = position


class MappingInputError(ChannelhubError):
    """The canonical request cannot be mapped: a field is missing or of the wrong kind.

    ``field`` is the back end's field being built, ``reason`` says which input was wrong.
    """

    code = "VALIDATION_FAILED"

    def __init__(self, field: str, reason: str, *, code: str | None = None) -> None:
        super().__init__(f"field {field!r}: {reason}", code=code, details={"field": field})
        self.field = field
        self.reason = reason


class MappedRefusal(ConnectorError):
    """The back end answered a result code other than success, translated by the mapping's
    code table into a canonical code; ``backend_code`` is the back end's own.

    A code the table lists is a definite refusal (nothing happened). A code it does not list
    takes the table's default and, after a money-changing request, is in doubt: nobody can
    say what an unknown code did.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        operation: str,
        code: str,
        backend_code: str,
        in_doubt: bool,
        answer: Mapping[str, Any],
    ) -> None:
        super().__init__(
            message,
            backend=backend,
            operation=operation,
            in_doubt=in_doubt,
            code=code,
            details={"backend_code": backend_code},
        )
        self.backend_code = backend_code
        self.answer = answer
