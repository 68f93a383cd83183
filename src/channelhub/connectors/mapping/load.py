"""Reading and checking a mapping file (docs/connectors.md, "Mappings").

Everything that can be wrong with a mapping is found here, once, when it loads: unknown keys,
JMESPath expressions that do not compile (with the column), formatters and their arguments,
canonical codes missing from the error-code catalog, layouts and fields a fixed record does
not have. Each refusal names the file and the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping as MappingABC
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
import jmespath.exceptions
import jmespath.parser
import yaml

from channelhub.connectors.fixed import FieldKind, Framing, Layout, LayoutError, load_layouts
from channelhub.connectors.mapping.errors import MappingError
from channelhub.connectors.mapping.formats import FORMATTERS, FormatArgs
from channelhub.connectors.mapping.model import FieldRule, Mapping, ResultRule
from channelhub.kernel.codes import CODES

__all__ = [
    "MAX_FILE_BYTES",
    "bundled_mappings",
    "follow_up_path",
    "load_mapping",
    "parse_mapping",
    "resolve",
]

#: A mapping file larger than this is a mistake, not a mapping.
MAX_FILE_BYTES = 256 * 1024

_TOP_KEYS = {
    "backend", "operation", "service", "description", "idempotent", "protocol", "layouts",
    "framing", "request", "response", "result", "inquiry", "reversal",
}  # fmt: skip
_RULE_KEYS = {"path", "value", "format", "optional", "default"}
_ARG_KEYS = {
    "currency", "pattern", "parse", "timezone", "width", "fill", "align", "length", "table",
    "otherwise",
}  # fmt: skip
_PROTOCOLS = ("fixed", "json")
_REFERENCE_LENGTH = 20


_BUNDLED = "channelhub.connectors.mappings"


def bundled_mappings() -> list[str]:
    """Return the names of the mappings shipped with channelhub (``core-balance`` ...)."""
    folder = resources.files(_BUNDLED)
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def resolve(reference: str) -> Path:
    """Return the file of a mapping: a path, else the name of a bundled mapping."""
    path = Path(reference)
    if path.exists() or reference not in bundled_mappings():
        return path
    return Path(str(resources.files(_BUNDLED).joinpath(f"{reference}.yaml")))


def follow_up_path(mapping_file: str, reference: str) -> Path:
    """Return the file of the mapping a mapping names as its ``inquiry`` or ``reversal``:
    beside it (with or without ``.yaml``), else a path, else a bundled mapping."""
    folder = Path(mapping_file).parent
    for candidate in (folder / reference, folder / f"{reference}.yaml"):
        if candidate.is_file():
            return candidate
    return resolve(reference)


def load_mapping(path: Path | str) -> Mapping:
    """Read and check the mapping file at ``path``; a layouts file it names is found
    relative to it.

    Raises:
        MappingError: the file cannot be read or is not a valid mapping.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise MappingError(str(path), "(file)", error.strerror or "cannot be read") from None
    if len(raw) > MAX_FILE_BYTES:
        raise MappingError(str(path), "(file)", f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MappingError(str(path), "(file)", "not UTF-8 text") from None
    return parse_mapping(text, name=str(path), base=path.parent)


def parse_mapping(text: str, *, name: str, base: Path | None = None) -> Mapping:
    """Check a mapping given as YAML text; ``name`` is how errors call it, ``base`` the
    folder a layouts file is relative to.

    Raises:
        MappingError: the text is not a valid mapping.
    """
    return _Loader(name, base).mapping(text)


class _Loader:
    """Checks one file, so every refusal can name it."""

    def __init__(self, name: str, base: Path | None) -> None:
        self.name = name
        self.base = base

    def fail(self, where: str, reason: str, position: int | None = None) -> MappingError:
        return MappingError(self.name, where, reason, position=position)

    def mapping(self, text: str) -> Mapping:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(error, "problem", None) or "not YAML"
            raise self.fail("(file)", f"{line}{problem}") from None
        if not isinstance(document, dict):
            raise self.fail("(file)", "a mapping file is a YAML mapping of its sections")
        self.keys("(file)", document, _TOP_KEYS)
        backend = self.text("backend", document.get("backend"))
        operation = self.text("operation", document.get("operation"))
        service = document.get("service")
        if service is not None:
            service = self.text("service", service)
        idempotent = document.get("idempotent", False)
        if not isinstance(idempotent, bool):
            raise self.fail("idempotent", "is true or false")
        protocol = document.get("protocol")
        if protocol not in _PROTOCOLS:
            raise self.fail("protocol", f"is one of {', '.join(_PROTOCOLS)}")
        request_layout = response_layout = None
        framing = Framing()
        if protocol == "fixed":
            request_layout, response_layout = self.layouts(document.get("layouts"))
            framing = self.framing(document.get("framing", {}))
        elif "layouts" in document or "framing" in document:
            raise self.fail("layouts", "only a fixed back end has layouts and framing")
        request = tuple(
            self.rule("request", target, spec)
            for target, spec in self.section("request", document).items()
        )
        response = tuple(
            self.rule("response", target, spec)
            for target, spec in self.section("response", document).items()
        )
        result = self.result(document.get("result"))
        inquiry = self.follow_up("inquiry", document.get("inquiry"), idempotent)
        reversal = self.follow_up("reversal", document.get("reversal"), idempotent)
        if request_layout is not None and response_layout is not None:
            for rule in request:
                self.fits(rule, request_layout)
            for rule in response:
                self.reads(f"response.{rule.target}", rule.path, response_layout)
                self.reads(f"response.{rule.target}.currency", rule.currency, response_layout)
            self.reads("result.field", result.path, response_layout)
        return Mapping(
            name=self.name,
            backend=backend,
            operation=operation,
            idempotent=idempotent,
            protocol=str(protocol),
            request_rules=request,
            response_rules=response,
            result=result,
            service=service,
            request_layout=request_layout,
            response_layout=response_layout,
            framing=framing,
            inquiry=inquiry,
            reversal=reversal,
        )

    # --- pieces ---------------------------------------------------------------------------

    def keys(self, where: str, spec: MappingABC[Any, Any], allowed: set[str]) -> None:
        unknown = sorted(str(key) for key in spec if key not in allowed)
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)}")

    def text(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "is required and is text")
        return value

    def section(self, where: str, document: MappingABC[str, Any]) -> dict[str, Any]:
        spec = document.get(where)
        if not isinstance(spec, dict):
            raise self.fail(where, "is required: a mapping of field to rule")
        for key in spec:
            if not isinstance(key, str) or not key:
                raise self.fail(f"{where}.{key}", "a field's name is text")
        return spec

    def expression(self, where: str, text: Any) -> jmespath.parser.ParsedResult:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(where, "a JMESPath expression is text")
        try:
            return jmespath.compile(text)
        except jmespath.exceptions.LexerError as error:
            raise self.fail(
                where, f"{text!r} does not compile: {error.message}", error.lexer_position
            ) from None
        except jmespath.exceptions.ParseError as error:
            raise self.fail(
                where, f"{text!r} does not compile: {error.msg}", error.lex_position
            ) from None
        except jmespath.exceptions.JMESPathError as error:
            raise self.fail(where, f"{text!r} does not compile: {error}") from None

    def code(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or value not in CODES:
            raise self.fail(where, f"{value!r} is not a canonical code (kernel/codes.py)")
        return value

    def layouts(self, spec: Any) -> tuple[Layout, Layout]:
        if not isinstance(spec, dict):
            raise self.fail("layouts", "a fixed back end needs {file, request, response}")
        self.keys("layouts", spec, {"file", "request", "response"})
        file = self.text("layouts.file", spec.get("file"))
        path = Path(file) if self.base is None else self.base / file
        try:
            layouts = load_layouts(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise self.fail("layouts.file", f"{file}: {error.strerror or error}") from None
        except (LayoutError, UnicodeDecodeError) as error:
            raise self.fail("layouts.file", f"{file}: {error}") from None
        found = []
        for side in ("request", "response"):
            name = self.text(f"layouts.{side}", spec.get(side))
            if name not in layouts:
                known = ", ".join(sorted(layouts))
                raise self.fail(f"layouts.{side}", f"no layout {name!r} in {file} ({known})")
            found.append(layouts[name])
        return found[0], found[1]

    def follow_up(self, where: str, value: Any, idempotent: bool) -> str | None:
        """Check the name of the mapping that asks about (``inquiry``) or undoes
        (``reversal``) this one's request; only a money-changing operation has them."""
        if value is None:
            return None
        if idempotent:
            raise self.fail(where, "only a money-changing (not idempotent) operation has one")
        name = self.text(where, value)
        if len(name) > 200:
            raise self.fail(where, "is a mapping's name or file, at most 200 characters")
        return name

    def framing(self, spec: Any) -> Framing:
        if not isinstance(spec, dict):
            raise self.fail("framing", "is a mapping: {prefix_bytes, inclusive}")
        self.keys("framing", spec, {"prefix_bytes", "inclusive", "max_record_bytes"})
        try:
            return Framing(**spec)
        except (TypeError, ValueError) as error:
            raise self.fail("framing", str(error)) from None

    def result(self, spec: Any) -> ResultRule:
        if not isinstance(spec, dict):
            raise self.fail("result", "is required: {field, success, codes, default}")
        self.keys("result", spec, {"field", "success", "codes", "default"})
        path = self.expression("result.field", spec.get("field"))
        success = spec.get("success")
        if not isinstance(success, list) or not success:
            raise self.fail("result.success", "is a non-empty list of the back end's codes")
        for value in success:
            self.backend_code("result.success", value)
        codes = spec.get("codes", {})
        if not isinstance(codes, dict):
            raise self.fail(
                "result.codes", "is a mapping of the back end's code to a canonical one"
            )
        table: dict[str, str] = {}
        for key, canonical in codes.items():
            backend_code = self.backend_code("result.codes", key)
            table[backend_code] = self.code(f"result.codes.{backend_code}", canonical)
            if backend_code in success:
                raise self.fail(f"result.codes.{backend_code}", "is also a success code")
        default = self.code("result.default", spec.get("default", "BACKEND_BAD_RESPONSE"))
        return ResultRule(path, frozenset(success), table, default)

    def backend_code(self, where: str, value: Any) -> str:
        if not isinstance(value, str):
            # YAML reads 0051 as a number (octal 41): a code must be quoted.
            raise self.fail(where, f'{value!r}: quote the back end\'s codes, e.g. "0051"')
        return value

    def rule(self, section: str, target: str, spec: Any) -> FieldRule:
        where = f"{section}.{target}"
        if isinstance(spec, str):
            return FieldRule(target, self.expression(where, spec), None, (), FormatArgs())
        if not isinstance(spec, dict):
            raise self.fail(where, "is an expression, or a mapping with path or value")
        self.keys(where, spec, _RULE_KEYS | _ARG_KEYS)
        if ("path" in spec) == ("value" in spec):
            raise self.fail(where, "has either a path or a constant value")
        path = self.expression(f"{where}.path", spec["path"]) if "path" in spec else None
        value = spec.get("value")
        if "value" in spec and not _scalar(value):
            raise self.fail(f"{where}.value", "a constant is text or a whole number")
        formats = self.formats(where, spec.get("format", []))
        optional = spec.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(f"{where}.optional", "is true or false")
        default = spec.get("default")
        if "default" in spec and not _scalar(default):
            raise self.fail(f"{where}.default", "a default is text or a whole number")
        used = {arg for name in formats for arg in FORMATTERS[name].required}
        used |= {arg for name in formats for arg in FORMATTERS[name].optional}
        for arg in sorted(set(spec) & _ARG_KEYS):
            if arg not in used:
                raise self.fail(f"{where}.{arg}", "no formatter of this field takes it")
        for name in formats:
            for arg in FORMATTERS[name].required:
                if arg not in spec:
                    raise self.fail(where, f"format {name} needs {arg}")
        currency = None
        if "currency" in spec:
            currency = self.expression(f"{where}.currency", spec["currency"])
        return FieldRule(
            target,
            path,
            value,
            formats,
            self.args(where, spec, formats),
            currency=currency,
            optional=optional,
            default=default,
        )

    def formats(self, where: str, spec: Any) -> tuple[str, ...]:
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list):
            raise self.fail(f"{where}.format", "is a formatter's name or a list of them")
        for name in names:
            if name not in FORMATTERS:
                known = ", ".join(FORMATTERS)
                raise self.fail(f"{where}.format", f"no formatter {name!r} (one of {known})")
        return tuple(names)

    def args(self, where: str, spec: MappingABC[str, Any], formats: tuple[str, ...]) -> FormatArgs:
        args: dict[str, Any] = {}
        for key in ("pattern", "parse"):
            if key in spec:
                pattern = spec[key]
                if not isinstance(pattern, str) or not pattern:
                    raise self.fail(f"{where}.{key}", "is a strftime pattern such as %Y%m%d")
                args[key] = pattern
        if "timezone" in spec:
            try:
                args["timezone"] = ZoneInfo(str(spec["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                raise self.fail(
                    f"{where}.timezone", "is an IANA zone such as Asia/Shanghai"
                ) from None
        if "width" in spec:
            args["width"] = self.count(f"{where}.width", spec["width"], 1000)
        if "fill" in spec:
            fill = spec["fill"]
            if not isinstance(fill, str) or len(fill) != 1:
                raise self.fail(f"{where}.fill", "is one character")
            args["fill"] = fill
        if "align" in spec:
            if spec["align"] not in ("left", "right"):
                raise self.fail(f"{where}.align", "is left or right")
            args["align"] = spec["align"]
        if "reference" in formats:
            args["length"] = self.count(
                f"{where}.length", spec.get("length", _REFERENCE_LENGTH), 24
            )
        elif "length" in spec:
            args["length"] = self.count(f"{where}.length", spec["length"], 1000)
        if "table" in spec:
            table = spec["table"]
            if not isinstance(table, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in table.items()
            ):
                raise self.fail(f"{where}.table", "maps quoted codes to quoted codes")
            args["table"] = dict(table)
        if "otherwise" in spec:
            args["otherwise"] = self.text(f"{where}.otherwise", spec["otherwise"])
        if "date" in formats:
            sample = dt.datetime(2000, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
            try:
                sample.strftime(args.get("pattern", "%Y-%m-%d"))
            except ValueError as error:
                raise self.fail(f"{where}.pattern", str(error)) from None
        return FormatArgs(**args)

    def count(self, where: str, value: Any, most: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise self.fail(where, f"is a whole number from 1 to {most}")
        return value

    def fits(self, rule: FieldRule, layout: Layout) -> None:
        """Check that a request rule names a field of the layout, of a type it can hold."""
        where = f"request.{rule.target}"
        try:
            target = layout.field(rule.target)
        except KeyError:
            raise self.fail(where, f"layout {layout.name!r} has no such field") from None
        produced: type | None = None
        if rule.formats:
            produced = FORMATTERS[rule.formats[-1]].output
        elif rule.path is None:
            produced = type(rule.value)
        needed = str if target.kind is FieldKind.TEXT else int
        if produced is not None and produced is not needed:
            hint = "text" if needed is str else "a whole number (e.g. format amount_minor)"
            raise self.fail(where, f"field is {target.kind.value} in {layout.name!r}: needs {hint}")

    def reads(self, where: str, path: jmespath.parser.ParsedResult | None, layout: Layout) -> None:
        """Check that an expression that is a bare field name reads a field of the answer."""
        if path is None:
            return
        node = path.parsed
        if node.get("type") == "field" and node.get("value") not in {f.name for f in layout.fields}:
            raise self.fail(where, f"layout {layout.name!r} has no field {node.get('value')!r}")


def _scalar(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
