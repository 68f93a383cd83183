"""The service catalog: bad definitions are reported with file and line; size costs nothing."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from channelhub.kernel import registry
from channelhub.kernel.catalog import (
    BUILTIN_CATALOG,
    Catalog,
    CatalogError,
    definition_files,
    load_definitions,
)
from channelhub.kernel.errors import ServiceNotOnChannel, UnknownService, ValidationFailed
from channelhub.runtime import import_plugins
from tests.support import flow_steps  # registers the test steps

assert flow_steps

GOOD = """\
id: demo.thing
category: account
version: 1
title: A thing
auth: {level: none}
channels: [mobile, web]
input:
  type: object
  required: [name]
  properties:
    name: {type: string, maxLength: 10}
flow:
  - step: system.echo
"""


def _load(tmp_path: Path, text: str, name: str = "service.yaml") -> list[Any]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_definitions([path], registry)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        _load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_builtin_catalog_loads() -> None:
    import_plugins([])  # the built-in services' steps register when their modules load
    services = load_definitions(definition_files([BUILTIN_CATALOG]), registry)
    assert {s.id for s in services} >= {"system.echo", "system.time"}


def test_good_definition_loads(tmp_path: Path) -> None:
    (service,) = _load(tmp_path, GOOD)
    assert service.id == "demo.thing"
    assert service.version == 1


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (("  - step: system.echo", "  - step: no.such"), 13, "unknown step 'no.such'"),
        (("category: account", "category: groceries"), 2, "category"),
        (("version: 1", "version: 0"), 3, "version"),
        (("channels: [mobile, web]", "channels: [mobile, fax]"), 6, "channels[1]"),
        (
            ("    name: {type: string, maxLength: 10}", "    name: {type: strin}"),
            11,
            "not a valid JSON Schema",
        ),
        (
            ("  - step: system.echo", "  - step: system.echo\n    when: 'input.name =='"),
            14,
            "condition does not compile",
        ),
        (
            ("  - step: system.echo", "  - step: test.record\n    with: {name: x}"),
            13,
            "needs a compensation",
        ),
        (
            ("  - step: system.echo", "  - step: test.record\n    compensation: test.nope"),
            14,
            "unknown compensation",
        ),
        (("title: A thing", "title: A thing\ntitle: Again"), 5, "key 'title' appears twice"),
        (("auth: {level: none}", "auth: {level: none, colour: red}"), 5, "auth.colour"),
    ],
)
def test_bad_definition_names_file_line_and_reason(
    tmp_path: Path, change: tuple[str, str], line: int, reason: str
) -> None:
    old, new = change
    assert old in GOOD
    problems = _problems(tmp_path, GOOD.replace(old, new))
    assert any(
        p.startswith(f"{tmp_path / 'service.yaml'}:{line}: ") and reason in p for p in problems
    ), problems


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD.replace("title: A thing", "title: [unclosed"))
    assert problems[0].startswith(f"{tmp_path / 'service.yaml'}:")
    assert "not valid YAML" in problems[0]


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("system.echo", "no.one"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text("- just a list\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "d.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_definitions(definition_files([tmp_path]), registry)
    text = str(caught.value)
    assert "a.yaml:13: unknown step 'no.one'" in text
    assert "b.yaml:1: a definition must be a mapping" in text
    assert "d.yaml:1: demo.thing version 1 is also defined in" in text


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD + "# " + "x" * 1_100_000 + "\n")
    assert "larger than" in problems[0]


def _definitions(tmp_path: Path, count: int) -> Catalog:
    folder = tmp_path / f"catalog-{count}"
    folder.mkdir()
    for n in range(count):
        text = GOOD.replace("demo.thing", f"generated.service_{n:04d}")
        (folder / f"s{n:04d}.yaml").write_text(text, encoding="utf-8")
    return Catalog(load_definitions(definition_files([folder]), registry))


def _calls(work: Callable[[], object]) -> int:
    """Count Python function calls made by ``work``: a cost measure that is not a timing."""
    count = 0

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profiler)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def test_a_thousand_definitions_load_and_a_request_costs_the_same(tmp_path: Path) -> None:
    small, large = _definitions(tmp_path, 10), _definitions(tmp_path, 1000)
    assert len(large) == 1000

    def request_work(catalog: Catalog) -> Callable[[], object]:
        def work() -> object:
            service = catalog.resolve("generated.service_0007", channel="mobile")
            service.validate_input({"name": "abc"})
            return service

        return work

    request_work(small)()  # warm caches (jsonschema builds lazily on first use)
    request_work(large)()
    assert _calls(request_work(large)) == _calls(request_work(small))


def test_resolve_refuses_unknown_and_off_channel_services(tmp_path: Path) -> None:
    catalog = Catalog(_load(tmp_path, GOOD))
    with pytest.raises(UnknownService):
        catalog.resolve("demo.nothing", channel="web")
    with pytest.raises(UnknownService):
        catalog.resolve("demo.thing", channel="web", version=2)
    with pytest.raises(ServiceNotOnChannel):
        catalog.resolve("demo.thing", channel="atm")
    assert catalog.resolve("demo.thing", channel="web").version == 1


def test_newest_published_version_wins_and_drafts_are_invisible(tmp_path: Path) -> None:
    v1 = _load(tmp_path, GOOD, "v1.yaml")
    v2 = _load(tmp_path, GOOD.replace("version: 1", "version: 2"), "v2.yaml")
    v3 = _load(tmp_path, GOOD.replace("version: 1", "version: 3\nstatus: draft"), "v3.yaml")
    catalog = Catalog([*v1, *v2, *v3])
    assert catalog.resolve("demo.thing", channel="web").version == 2
    assert catalog.resolve("demo.thing", channel="web", version=1).version == 1
    with pytest.raises(UnknownService):
        catalog.resolve("demo.thing", channel="web", version=3)


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "name"), ({"name": 7}, "name"), ({"name": "x" * 11}, "name")],
)
def test_input_errors_name_the_field_but_not_the_value(
    tmp_path: Path, payload: dict[str, Any], field: str
) -> None:
    (service,) = _load(tmp_path, GOOD)
    with pytest.raises(ValidationFailed) as caught:
        service.validate_input(payload)
    assert caught.value.details["field"] == field
    assert "xxxxxxxxxxx" not in caught.value.message
