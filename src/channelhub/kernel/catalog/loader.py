"""Read service definitions from YAML, check them, and report each problem with file and line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from channelhub.kernel.catalog.compiled import (
    CompiledBranch,
    CompiledNode,
    CompiledService,
    CompiledStep,
    all_local,
    compile_condition,
)
from channelhub.kernel.catalog.definition import BranchNode, FlowNode, ServiceDefinition
from channelhub.kernel.steps import StepRegistry
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.money import Money

__all__ = [
    "BUILTIN_CATALOG",
    "CatalogError",
    "Problem",
    "StepRoute",
    "definition_files",
    "load_definitions",
]

#: The definitions that ship with channelhub, one folder per category.
BUILTIN_CATALOG = Path(__file__).resolve().parents[2] / "catalog"

# A definition file is small; anything larger is a mistake or an attack on the loader.
MAX_DEFINITION_BYTES = 1_000_000

_FORMATS = FormatChecker()


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a definition was refused, and where."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class CatalogError(Exception):
    """One or more definitions are invalid; ``problems`` lists each with file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class StepRoute:
    """What a service's ``routable`` step becomes on this node: another step (the call to an
    external back end), with its parameters and compensation."""

    step: str
    params: Mapping[str, Any]
    compensation: str | None = None


def definition_files(paths: Iterable[Path]) -> list[Path]:
    """Return every ``*.yaml``/``*.yml`` file under ``paths`` (files are taken as they are)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def load_definitions(
    files: Iterable[Path],
    registry: StepRegistry,
    routes: Mapping[str, StepRoute] | None = None,
) -> list[CompiledService]:
    """Load and compile every file; raise one CatalogError that lists every problem found.

    ``routes`` sends services, by id, to another back end: each such service's ``routable``
    step is compiled as the route's step instead.

    Raises:
        CatalogError: a file is unreadable, not YAML, not a valid definition, or a service
            id and version is defined twice; a route names a service that is not defined or
            has no routable step.
    """
    services: list[CompiledService] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, int], str] = {}
    routes = routes or {}
    for file in files:
        try:
            service = _load_file(file, registry, routes)
        except CatalogError as error:
            problems.extend(error.problems)
            continue
        key = (service.id, service.version)
        if key in seen:
            problems.append(
                Problem(str(file), 1, f"{key[0]} version {key[1]} is also defined in {seen[key]}")
            )
            continue
        seen[key] = str(file)
        services.append(service)
    defined = {service.id for service in services}
    problems.extend(
        Problem("(routes)", 1, f"route for {service_id!r}: no such service")
        for service_id in routes
        if service_id not in defined
    )
    if problems:
        raise CatalogError(problems)
    return services


def _load_file(
    file: Path, registry: StepRegistry, routes: Mapping[str, StepRoute]
) -> CompiledService:
    name = str(file)
    try:
        if file.stat().st_size > MAX_DEFINITION_BYTES:
            raise CatalogError([Problem(name, 1, f"larger than {MAX_DEFINITION_BYTES} bytes")])
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError([Problem(name, 1, f"cannot read: {error}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(error, "problem", None) or str(error)
        raise CatalogError([Problem(name, line, f"not valid YAML: {reason}")]) from None
    lines = _LineMap(root)
    duplicates = list(lines.duplicate_keys())
    if duplicates:
        raise CatalogError(
            [Problem(name, line, f"key {key!r} appears twice") for key, line in duplicates]
        )
    if not isinstance(document, dict):
        raise CatalogError([Problem(name, 1, "a definition must be a mapping of keys")])
    try:
        definition = ServiceDefinition.model_validate(document)
    except ValidationError as error:
        raise CatalogError(
            [
                Problem(name, lines.line_of(e["loc"]), f"{_loc_text(e['loc'])}: {e['msg']}")
                for e in error.errors()
            ]
        ) from None
    return _compile(definition, name, lines, registry, routes.get(definition.id))


def _compile(
    definition: ServiceDefinition,
    name: str,
    lines: _LineMap,
    registry: StepRegistry,
    route: StepRoute | None = None,
) -> CompiledService:
    problems: list[Problem] = []
    #: The routable steps compiled as the route's step.
    routed: list[str] = []

    def problem(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(Problem(name, lines.line_of(loc), reason))

    for key in ("input", "output"):
        schema = getattr(definition, key)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problem(
                (key, *error.absolute_path),
                f"{key} is not a valid JSON Schema at {where}: {error.message}",
            )
    if definition.input.get("type") != "object":
        problem(("input",), "input schema must describe an object (type: object)")
    if definition.amount is not None:
        properties = definition.input.get("properties", {})
        for field in (definition.amount.amount, definition.amount.currency):
            if field not in properties:
                problem(("amount",), f"amount field {field!r} is not a property of the input")

    step_up = definition.auth.step_up
    if step_up is not None:
        if step_up.amount_over and definition.amount is None:
            problem(("auth", "step_up"), "a step-up by amount needs the service's amount fields")
        for currency, limit in step_up.amount_over.items():
            try:
                Money.parse(limit, currency)
            except ChannelhubError as error:
                problem(("auth", "step_up", "amount_over", currency), error.message)
        if step_up.beneficiary is not None and step_up.beneficiary not in definition.input.get(
            "properties", {}
        ):
            problem(
                ("auth", "step_up", "beneficiary"),
                f"beneficiary field {step_up.beneficiary!r} is not a property of the input",
            )

    output_keys: set[str] = set()

    def compile_nodes(
        nodes: tuple[FlowNode, ...], loc: tuple[Any, ...]
    ) -> tuple[CompiledNode, ...]:
        compiled: list[CompiledNode] = []
        for index, node in enumerate(nodes):
            here = (*loc, index)
            if isinstance(node, BranchNode):
                try:
                    condition = compile_condition(node.branch.condition)
                except ValueError as error:
                    problem(
                        (*here, "branch", "if"), f"condition does not compile: {_first_line(error)}"
                    )
                    condition = None
                compiled.append(
                    CompiledBranch(
                        condition=condition,
                        source=node.branch.condition,
                        then=compile_nodes(node.branch.then, (*here, "branch", "then")),
                        otherwise=compile_nodes(node.branch.otherwise, (*here, "branch", "else")),
                    )
                )
                continue
            if node.routable and route is not None:
                if routed:
                    problem((*here, "routable"), "a flow has one routable step: its core call")
                original, replacement = (
                    registry.steps.get(node.step),
                    registry.steps.get(route.step),
                )
                if original and replacement and original.mutates != replacement.mutates:
                    problem(
                        (*here, "routable"),
                        f"step {node.step!r} {'changes' if original.mutates else 'only reads'} "
                        f"state, but its route {'changes' if replacement.mutates else 'only reads'}"
                        " it: route it through a mapping of the same kind",
                    )
                node = node.model_copy(
                    update={
                        "id": node.output_key,  # later steps and reports keep their names
                        "step": route.step,
                        "params": dict(route.params),
                        "compensation": route.compensation,
                    }
                )
                routed.append(node.output_key)
            spec = registry.steps.get(node.step)
            if spec is None:
                problem((*here, "step"), f"unknown step {node.step!r}")
                continue
            compensation = None
            if node.compensation is not None:
                compensation = registry.compensations.get(node.compensation)
                if compensation is None:
                    problem((*here, "compensation"), f"unknown compensation {node.compensation!r}")
            elif spec.mutates:
                problem(
                    (*here, "step"), f"step {node.step!r} changes state and needs a compensation"
                )
            if node.output_key in output_keys:
                problem(
                    (*here, "id"), f"two steps share the id {node.output_key!r}; give one an id"
                )
            output_keys.add(node.output_key)
            when = None
            if node.when is not None:
                try:
                    when = compile_condition(node.when)
                except ValueError as error:
                    problem((*here, "when"), f"condition does not compile: {_first_line(error)}")
            compiled.append(CompiledStep(spec, node.output_key, node.params, compensation, when))
        return tuple(compiled)

    flow = compile_nodes(definition.flow, ("flow",))
    if route is not None and not routed:
        problem(("flow",), f"routed to {route.step}, but no step of the flow is routable")
    if problems:
        raise CatalogError(problems)
    return CompiledService(
        definition=definition,
        flow=flow,
        input_validator=Draft202012Validator(definition.input, format_checker=_FORMATS),
        fast_validator=_fast_validator(definition.input),
        source=name,
        atomic=all_local(flow),
    )


def _fast_validator(schema: dict[str, Any]) -> Any | None:
    """Compile ``schema`` with jsonschema-rs too; None (Python only) if it will not take it."""
    try:
        return jsonschema_rs.validator_for(schema, validate_formats=True)
    except (ValueError, TypeError):
        return None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    # cel's parser repeats the expression with a caret below; the first line says what is wrong.
    return text.splitlines()[0] if text else type(error).__name__


def _loc_text(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("step", "branch") or isinstance(p, int)]
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return text.lstrip(".") or "(root)"


class _LineMap:
    """Find the source line of a location such as ``("flow", 1, "compensation")``."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line_of(self, loc: tuple[Any, ...] | list[Any]) -> int:
        node = self.root
        if node is None:
            return 1
        best = node.start_mark.line + 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                continue  # a union tag or alias pydantic adds to the path; keep looking deeper
            node = child
            best = node.start_mark.line + 1
        return best

    def duplicate_keys(self) -> Iterator[tuple[str, int]]:
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        if key.value in seen:
                            yield key.value, key.start_mark.line + 1
                        seen.add(key.value)
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return node.value[part]  # type: ignore[no-any-return]
    return None
