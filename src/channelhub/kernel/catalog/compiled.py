"""A service definition made ready to run: schemas compiled, steps resolved, conditions parsed.

All of this happens once, when the catalog loads, so a request only does dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from channelhub.kernel.catalog.definition import ServiceDefinition
from channelhub.kernel.errors import ValidationFailed
from channelhub.kernel.steps import StepSpec

__all__ = ["CompiledBranch", "CompiledNode", "CompiledService", "CompiledStep", "all_local"]


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A step of a flow, with its registered function and compensation."""

    spec: StepSpec
    output_key: str
    params: Mapping[str, Any]
    compensation: StepSpec | None
    when: Any | None  # a compiled cel.Program


@dataclass(frozen=True, slots=True)
class CompiledBranch:
    """A condition and its two arms."""

    condition: Any  # a compiled cel.Program
    source: str
    then: tuple[CompiledNode, ...]
    otherwise: tuple[CompiledNode, ...]


CompiledNode = CompiledStep | CompiledBranch


@dataclass(frozen=True, slots=True)
class CompiledService:
    """A published service, ready for the engine."""

    definition: ServiceDefinition
    flow: tuple[CompiledNode, ...]
    input_validator: Draft202012Validator
    source: str
    #: The same schema compiled by jsonschema-rs: ~100x faster on the valid requests that are
    #: the usual case; the Python validator then only describes what is wrong.
    fast_validator: Any = None
    #: No step calls another system: the whole flow runs in one database transaction.
    atomic: bool = False

    @property
    def id(self) -> str:
        """Return the service id."""
        return self.definition.id

    @property
    def version(self) -> int:
        """Return the definition's version."""
        return self.definition.version

    def validate_input(self, payload: Mapping[str, Any]) -> None:
        """Check ``payload`` against the input schema.

        Raises:
            ValidationFailed: naming the first failing field; the value itself is never echoed,
                since it may be a secret typed into the wrong field.
        """
        if self.fast_validator is not None:
            instance = payload if isinstance(payload, dict) else dict(payload)
            if self.fast_validator.is_valid(instance):
                return
        error = next(self.input_validator.iter_errors(payload), None)
        if error is None:
            if self.fast_validator is None:
                return
            # The two validators disagree (a format or regex corner): refuse, as the strict one.
            raise ValidationFailed(
                "(body): does not match the input schema",
                details={"field": "(body)", "reason": "does not match the input schema"},
            )
        field, reason = describe_error(error)
        raise ValidationFailed(f"{field}: {reason}", details={"field": field, "reason": reason})


def all_local(nodes: tuple[CompiledNode, ...]) -> bool:
    """Tell whether no step of ``nodes``, in any branch, changes another system.

    An inquiry (an external step registered as changing nothing there) leaves nothing to
    recover, so a flow may call it inside its one database transaction, as if it were local.
    """
    for node in nodes:
        if isinstance(node, CompiledBranch):
            if not (all_local(node.then) and all_local(node.otherwise)):
                return False
        elif (node.spec.external and not node.spec.inquiry) or (
            node.compensation is not None and node.compensation.external
        ):
            return False
    return True


def compile_condition(source: str) -> Any:
    """Compile a CEL condition; raises ValueError with the parser's reason."""
    return cel.compile(source)


def _pointer(parts: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return text.lstrip(".") or "(body)"


_REASONS = {
    "type": "must be of type {value}",
    "enum": "must be one of {value}",
    "const": "must be {value}",
    "minLength": "must be at least {value} characters",
    "maxLength": "must be at most {value} characters",
    "pattern": "does not have the required format",
    "format": "must be a valid {value}",
    "minimum": "must be at least {value}",
    "maximum": "must be at most {value}",
    "exclusiveMinimum": "must be greater than {value}",
    "exclusiveMaximum": "must be less than {value}",
    "minItems": "must have at least {value} items",
    "maxItems": "must have at most {value} items",
    "maxProperties": "must have at most {value} fields",
}


def describe_error(error: ValidationError) -> tuple[str, str]:
    """Return (field path, reason) for a schema error, without the offending value."""
    path = list(error.absolute_path)
    rule = error.validator
    value: Any = error.validator_value
    schema: Any = error.schema
    if rule == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = next((name for name in value if name not in instance), "?")
        return _pointer([*path, missing]), "is required"
    if rule == "additionalProperties":
        instance = error.instance if isinstance(error.instance, dict) else {}
        allowed = set(schema.get("properties", {}))
        extra = next((str(k)[:64] for k in instance if k not in allowed), "?")
        return _pointer([*path, extra]), "is not a known field"
    if rule == "type":
        value = value if isinstance(value, str) else " or ".join(value)
    elif rule == "enum":
        value = ", ".join(map(str, value))
    template = _REASONS.get(str(rule), "fails the {rule} rule")
    reason = template.format(value=value, rule=rule)
    return _pointer(path), reason
