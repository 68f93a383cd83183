"""``channelhub mapping test``: run a mapping on a sample without sending anything, and show
what would go over the wire and what would come back, byte by byte.

Exit status: 0 the mapping ran (its outcome may be a canonical refusal from the code table),
1 it refused the input or the answer (the reason is printed), 2 the mapping does not load.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from channelhub.connectors.base import BackendBadResponse
from channelhub.connectors.fixed import FixedEncodeError, Layout, encode
from channelhub.connectors.mapping.errors import MappedRefusal, MappingError, MappingInputError
from channelhub.connectors.mapping.load import bundled_mappings, load_mapping, resolve
from channelhub.connectors.mapping.model import Mapping
from channelhub.connectors.mapping.wire import byte_ranges
from channelhub.kernel.codes import CODES
from channelhub.kit.ids import new_id

__all__ = ["MAX_SAMPLE_BYTES", "bundled_mappings", "resolve", "run"]

#: A sample or answer file larger than this is refused before it is parsed.
MAX_SAMPLE_BYTES = 1024 * 1024


class _Refused(Exception):
    """The input or the answer cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class _Output:
    out: Console
    err: Console

    def title(self, text: str) -> None:
        self.out.print(Text(text, style="bold"))

    def table(self, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
        table = Table(*(Column(h, overflow="fold") for h in headers))
        for row in rows:
            # Text, not markup: a sample's values are shown as they are, whatever they hold.
            table.add_row(*(Text(cell) for cell in row))
        self.out.print(table)


def run(
    reference: str,
    sample: Path,
    *,
    answer: Path | None,
    answer_hex: str | None,
    out: Console,
    err: Console,
) -> int:
    """Run the mapping ``reference`` on ``sample`` (and ``answer``); return the exit status."""
    show = _Output(out, err)
    try:
        mapping = load_mapping(resolve(reference))
    except MappingError as error:
        err.print(Text(f"error: {error.message}"))
        return 2
    try:
        _trial(mapping, sample, answer, answer_hex, show)
    except _Refused as refused:
        err.print(Text(f"refused: {refused}"))
        return 1
    return 0


def _trial(
    mapping: Mapping, sample: Path, answer: Path | None, answer_hex: str | None, show: _Output
) -> None:
    if answer is not None and answer_hex is not None:
        raise _Refused("give --answer or --answer-hex, not both")
    if answer_hex is not None and mapping.response_layout is None:
        raise _Refused("--answer-hex is for a fixed back end; give --answer with JSON")
    document = _canonical(_read_json(sample, "input"))
    show.out.print(
        Text(
            f"mapping {mapping.name}: back end {mapping.backend!r}, operation "
            f"{mapping.operation!r} ({mapping.protocol}, "
            f"{'idempotent' if mapping.idempotent else 'money-changing: sent once'})"
        )
    )
    try:
        fields = mapping.request(document)
    except MappingInputError as error:
        raise _Refused(f"{error.message} [{error.code}]") from None
    sources = {rule.target: rule for rule in mapping.request_rules}
    show.title("request fields")
    show.table(
        ("field", "value", "from"),
        [
            (name, _shown(value), _source(sources[name].source, sources[name].formats))
            for name, value in fields.items()
        ],
    )
    _request_wire(mapping, fields, show)
    if answer is None and answer_hex is None:
        show.out.print("no answer given (--answer, --answer-hex): nothing more to show")
        return
    received = _answer(mapping, answer, answer_hex, show)
    try:
        canonical = mapping.response(received)
    except MappedRefusal as refusal:
        entry = CODES[refusal.code]
        show.title("canonical error")
        show.table(
            ("code", "HTTP", "field 39", "back-end code", "in doubt", "message"),
            [
                (
                    refusal.code,
                    str(entry.http_status),
                    entry.iso8583,
                    refusal.backend_code,
                    "yes" if refusal.in_doubt else "no",
                    refusal.message,
                )
            ],
        )
        return
    except BackendBadResponse as error:
        raise _Refused(f"the answer cannot be read: {error.message}") from None
    show.title("canonical response")
    show.table(("field", "value"), [(k, _shown(v)) for k, v in canonical.items()])


def _request_wire(mapping: Mapping, fields: dict[str, Any], show: _Output) -> None:
    if mapping.request_layout is None:
        body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        show.title(f"JSON body ({len(body)} bytes)")
        show.out.print(Text(body.decode()))
        return
    try:
        record = mapping.record(fields)
    except MappingInputError as error:
        raise _Refused(f"{error.message} [{error.code}]") from None
    _bytes(mapping, "request record", mapping.request_layout, record, fields, show)


def _bytes(
    mapping: Mapping,
    what: str,
    layout: Layout,
    record: bytes,
    values: dict[str, Any],
    show: _Output,
) -> None:
    framing = mapping.framing
    show.title(
        f"{what}, layout {layout.name} ({layout.encoding.value}): {len(record)} bytes "
        f"behind a {framing.prefix_bytes}-byte length prefix"
    )
    show.table(
        ("offset", "bytes", "field", "kind", "hex", "value"),
        [
            (
                str(r.offset),
                str(len(r.data)),
                r.field,
                r.kind,
                r.hex,
                str(len(record)) if r.kind == "prefix" else _shown(values.get(r.field, "")),
            )
            for r in byte_ranges(layout, record, framing)
        ],
    )


def _answer(
    mapping: Mapping, answer: Path | None, answer_hex: str | None, show: _Output
) -> dict[str, Any]:
    layout = mapping.response_layout
    if answer_hex is not None:
        assert layout is not None
        cleaned = "".join(answer_hex.split())
        if len(cleaned) > 2 * MAX_SAMPLE_BYTES:
            raise _Refused("--answer-hex is too long")
        try:
            record = bytes.fromhex(cleaned)
        except ValueError:
            raise _Refused(
                "--answer-hex is not hexadecimal bytes (e.g. 'C2 C9 D5 D8 ...')"
            ) from None
        record = _unframed(mapping, record)
    else:
        assert answer is not None
        fields = _read_json(answer, "answer")
        if layout is None:
            body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
            show.title(f"answer ({len(body)} bytes)")
            show.out.print(Text(body.decode()))
            return fields
        try:
            record = encode(layout, fields)
        except FixedEncodeError as error:
            raise _Refused(f"the answer is not a {layout.name} record: {error.message}") from None
    try:
        decoded = mapping.decode_answer(record)
    except BackendBadResponse as error:
        raise _Refused(error.message) from None
    assert layout is not None
    _bytes(mapping, "answer record", layout, record, decoded, show)
    return decoded


def _unframed(mapping: Mapping, record: bytes) -> bytes:
    """Accept an answer with or without its length prefix."""
    layout, framing = mapping.response_layout, mapping.framing
    assert layout is not None
    if len(record) == layout.size + framing.prefix_bytes:
        prefix = framing.frame(record[framing.prefix_bytes :])[: framing.prefix_bytes]
        if record[: framing.prefix_bytes] == prefix:
            return record[framing.prefix_bytes :]
    return record


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SAMPLE_BYTES + 1)
    except OSError as error:
        raise _Refused(f"{what} {path}: {error.strerror or 'cannot be read'}") from None
    if len(raw) > MAX_SAMPLE_BYTES:
        raise _Refused(f"{what} {path}: larger than {MAX_SAMPLE_BYTES} bytes")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _Refused(f"{what} {path}: not JSON ({error.msg} at byte {error.pos})") from None
    if not isinstance(document, dict):
        raise _Refused(f"{what} {path}: a JSON object is expected")
    return document


#: The parts of a sample besides ``input``, as a flow's step hands them to a mapping.
_SAMPLE_PARTS = ("context", "outputs", "original", "sensitive")


def _canonical(document: dict[str, Any]) -> dict[str, Any]:
    """Check a sample's shape and give its context what it leaves out: a fresh transaction
    id and request id, the time now, the channel ``test``."""
    unknown = sorted(set(document) - {"input", *_SAMPLE_PARTS})
    if unknown or not isinstance(document.get("input"), dict):
        raise _Refused(
            'the sample is {"input": {<the service payload>}, "context": {...}, '
            '"outputs": {...}, "original": {...}, "sensitive": {...}}'
            + (f"; unknown key(s) {', '.join(k[:40] for k in unknown[:5])}" if unknown else "")
        )
    parts = {part: document.get(part, {}) for part in _SAMPLE_PARTS}
    for part, value in parts.items():
        if not isinstance(value, dict):
            raise _Refused(f"the sample's {part} is a JSON object")
    parts["context"] = {
        "txn_id": str(new_id()),
        "request_id": str(new_id()),
        "now": dt.datetime.now(dt.UTC).isoformat(),
        "channel": "test",
        **parts["context"],
    }
    return {"input": document["input"], **parts}


def _shown(value: Any) -> str:
    """A value as JSON shows it: quotes around text, control characters escaped."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 200 else text[:200] + "..."


def _source(source: str, formats: tuple[str, ...]) -> str:
    return " | ".join((source, *formats))
