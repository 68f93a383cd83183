"""Mappings: how a service's canonical request and response map to and from a back end's
message, declared in a YAML file (docs/connectors.md, "Mappings").

Paths and expressions are JMESPath, compiled when the file loads; formatters turn amounts,
dates and codes into the back end's form and back; a code table translates the back end's
result codes into canonical ones. ``load`` checks everything when the file loads, so a
mapping cannot fail for its own reasons while a customer waits; only the data can.

The canonical request a mapping reads is ``{"input": <the service's payload>, "context":
{"txn_id", "now", "channel", ...}}``; the back end's answer is read as it comes (for a
``fixed`` back end, the decoded record).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser

from channelhub.connectors.base import BackendBadResponse
from channelhub.connectors.fixed import (
    FixedDecodeError,
    FixedEncodeError,
    Framing,
    Layout,
    decode,
    encode,
)
from channelhub.connectors.mapping.errors import MappedRefusal, MappingInputError
from channelhub.connectors.mapping.formats import FormatArgs, FormatProblem, apply
from channelhub.kernel.codes import CODES

__all__ = ["FieldRule", "Mapping", "ResultRule"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How one field is built: a JMESPath expression or a constant, then formatters."""

    target: str
    path: jmespath.parser.ParsedResult | None
    value: Any
    formats: tuple[str, ...]
    args: FormatArgs
    currency: jmespath.parser.ParsedResult | None = None
    optional: bool = False
    default: Any = None

    @property
    def source(self) -> str:
        """Return where the value comes from, as the file says it."""
        return self.path.expression if self.path is not None else repr(self.value)


@dataclass(frozen=True, slots=True)
class ResultRule:
    """Where the back end's result code is, which codes mean success, and the code table."""

    path: jmespath.parser.ParsedResult
    success: frozenset[str]
    codes: dict[str, str]
    default: str = "BACKEND_BAD_RESPONSE"


@dataclass(frozen=True, slots=True)
class Mapping:
    """A loaded, checked mapping of one operation of one back end."""

    name: str
    backend: str
    operation: str
    idempotent: bool
    protocol: str
    request_rules: tuple[FieldRule, ...]
    response_rules: tuple[FieldRule, ...]
    result: ResultRule
    service: str | None = None
    request_layout: Layout | None = None
    response_layout: Layout | None = None
    framing: Framing = field(default_factory=Framing)
    #: The mapping that asks the back end whether this request was carried out (a status
    #: inquiry by the same reference), for when its answer never came; and the one that
    #: undoes it (a reversal). Names of other mappings, bundled or relative to this file.
    inquiry: str | None = None
    reversal: str | None = None

    # --- run time -----------------------------------------------------------------------

    def request(self, canonical: MappingABC[str, Any]) -> dict[str, Any]:
        """Return the back end's request fields for a canonical request.

        Raises:
            MappingInputError: a field's input is missing or cannot be formatted (named).
        """
        fields: dict[str, Any] = {}
        for rule in self.request_rules:
            try:
                found, value = _evaluate(rule, canonical)
            except FormatProblem as problem:
                raise MappingInputError(rule.target, problem.reason, code=problem.code) from None
            if found:
                fields[rule.target] = value
        return fields

    def record(self, fields: MappingABC[str, Any]) -> bytes:
        """Encode request fields as the fixed record the back end reads (without framing).

        Raises:
            MappingInputError: a value does not fit its field of the layout.
        """
        if self.request_layout is None:
            raise MappingInputError("(record)", f"a {self.protocol} back end takes no record")
        try:
            return encode(self.request_layout, fields)
        except FixedEncodeError as error:
            raise MappingInputError(error.field, error.reason) from None

    def decode_answer(self, data: bytes) -> dict[str, Any]:
        """Decode a fixed answer record (without framing) into the back end's fields.

        Raises:
            BackendBadResponse: the bytes are not a record of the response layout.
        """
        if self.response_layout is None:
            raise self._bad(f"a {self.protocol} back end sends no record", {})
        try:
            return dict(decode(self.response_layout, data))
        except FixedDecodeError as error:
            raise self._bad(f"the answer does not decode: {error.message}", error.details) from None

    def response(self, answer: MappingABC[str, Any]) -> dict[str, Any]:
        """Return the canonical response for the back end's answer, or raise the canonical
        refusal its result code stands for.

        Raises:
            MappedRefusal: the result code is not a success (translated by the code table).
            BackendBadResponse: the answer has no result code, or lacks a field the response
                needs, or holds one of the wrong kind (named).
        """
        code = self.result.path.search(answer)
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        if not isinstance(code, str):
            raise self._bad(f"the answer has no result code at {self.result.path.expression}", {})
        if code not in self.result.success:
            raise self._refusal(code, answer)
        canonical: dict[str, Any] = {}
        for rule in self.response_rules:
            try:
                found, value = _evaluate(rule, answer)
            except FormatProblem as problem:
                raise self._bad(f"field {rule.target!r}: {problem.reason}", {}) from None
            if found:
                canonical[rule.target] = value
        return canonical

    def _refusal(self, code: str, answer: MappingABC[str, Any]) -> MappedRefusal:
        known = code in self.result.codes
        canonical = self.result.codes.get(code, self.result.default)
        shown = code if len(code) <= 16 else code[:16] + "..."
        meaning = CODES[canonical].message_en
        return MappedRefusal(
            f"{meaning} (back end {self.backend!r} answered {shown!r}"
            f"{'' if known else ', a code its mapping does not know'})",
            backend=self.backend,
            operation=self.operation,
            code=canonical,
            backend_code=shown,
            in_doubt=not known and not self.idempotent,
            answer=answer,
        )

    def _bad(self, message: str, details: MappingABC[str, Any]) -> BackendBadResponse:
        # A success answer the mapping cannot read: after a money-changing request, the
        # effect happened or may have; the flow must settle it, never report a failure.
        return BackendBadResponse(
            message,
            backend=self.backend,
            operation=self.operation,
            in_doubt=not self.idempotent,
            details=details,
        )


def _evaluate(rule: FieldRule, document: MappingABC[str, Any]) -> tuple[bool, Any]:
    """Return whether the field is present and its formatted value."""
    try:
        value = rule.value if rule.path is None else rule.path.search(document)
        currency = None if rule.currency is None else rule.currency.search(document)
    except jmespath.exceptions.JMESPathError as error:
        raise FormatProblem(f"{rule.source}: {error}") from None
    if value is None:
        if rule.default is not None:
            value = rule.default
        elif rule.optional:
            return False, None
        else:
            raise FormatProblem(f"{rule.source} is missing")
    if isinstance(value, float):
        raise FormatProblem(f"{rule.source} is a number with a fraction; amounts are strings")
    if not rule.formats:
        return True, value
    return True, apply(rule.formats, value, replace(rule.args, currency=currency))
