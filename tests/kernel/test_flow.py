"""The flow engine through the kernel: a failure at each step undoes exactly what completed.

An all-local flow (test.flow) is one database transaction: a failure rolls every step back at
once. A flow that calls another system (test.flow_mixed) commits as it goes and is undone by
compensations, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sqlalchemy import Table, literal, select, text

from channelhub.kernel import ANONYMOUS, TransactionRequest, TxnStatus
from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.db import Rider
from channelhub.models import JournalEntry
from channelhub.runtime import Runtime
from tests.support.flow_steps import CALLS, DID

pytestmark = pytest.mark.asyncio

JOURNAL: Table = JournalEntry.__table__  # type: ignore[assignment]


def _request(
    payload: dict[str, Any], key: str | None = None, service: str = "test.flow"
) -> TransactionRequest:
    return TransactionRequest(
        service_id=service,
        channel="web",
        principal=ANONYMOUS,
        payload=payload,
        idempotency_key=key,
    )


async def _journal(runtime: Runtime) -> list[Any]:
    async with runtime.db.connect() as conn:
        result = await conn.execute(select(JOURNAL.c.status, JOURNAL.c.code, JOURNAL.c.step_log))
        return list(result.all())


async def _events(runtime: Runtime) -> list[str]:
    async with runtime.db.connect() as conn:
        result = await conn.execute(text("SELECT type FROM outbox WHERE type LIKE 'channelhub.%'"))
        return [row[0] for row in result.all()]


async def _effects(runtime: Runtime) -> list[str]:
    """The steps whose database effect is there, sorted."""
    async with runtime.db.connect() as conn:
        result = await conn.execute(
            text("SELECT type FROM outbox WHERE type LIKE :did ORDER BY type"), {"did": DID + "%"}
        )
        return [row[0].removeprefix(DID) for row in result.all()]


async def test_all_steps_run_in_order(runtime: Runtime) -> None:
    result = await runtime.engine.execute(_request({"route": "left"}))
    assert result.status is TxnStatus.SUCCEEDED
    assert [(a, n) for a, n, _ in CALLS] == [
        ("do", "a"),
        ("observe", "look"),
        ("do", "b"),
        ("do", "left"),
        ("do", "c"),
    ]
    assert result.data == {"ran": ["a", "b", "left", "c"]}
    assert await _effects(runtime) == ["a", "b", "c", "left"]
    (row,) = await _journal(runtime)
    assert row.status == "succeeded"
    assert await _events(runtime) == ["channelhub.test.flow.succeeded"]


async def test_branch_and_when_choose_the_steps(runtime: Runtime) -> None:
    result = await runtime.engine.execute(_request({"route": "right", "skip_c": True}))
    assert result.status is TxnStatus.SUCCEEDED
    assert [n for a, n, _ in CALLS if a == "do"] == ["a", "b", "right"]


# For a failure at each step: the steps that completed before it.
COMPLETED = {
    "a": [],
    "look": ["a"],
    "b": ["a"],
    "left": ["a", "b"],
    "c": ["a", "b", "left"],
}


@pytest.mark.parametrize("fail_at", list(COMPLETED))
async def test_failure_in_an_atomic_flow_rolls_every_step_back(
    runtime: Runtime, fail_at: str
) -> None:
    result = await runtime.engine.execute(_request({"route": "left", "fail_at": fail_at}))
    assert result.status is TxnStatus.FAILED
    assert result.code == "BUSINESS_RULE_VIOLATION"
    assert result.details == {"step": fail_at}
    assert [n for a, n, _ in CALLS if a == "do"] == COMPLETED[fail_at]
    assert [n for a, n, _ in CALLS if a == "undo"] == []  # the rollback undid them
    assert await _effects(runtime) == []
    (row,) = await _journal(runtime)
    assert (row.status, row.code) == ("failed", "BUSINESS_RULE_VIOLATION")
    states = {e["id"]: e["state"] for e in row.step_log if "id" in e}
    for step in COMPLETED[fail_at]:
        assert states[step] == "rolled_back"
    assert states[fail_at if fail_at != "look" else "test.observe"] == "failed"
    assert await _events(runtime) == ["channelhub.test.flow.failed"]


@pytest.mark.parametrize("fail_at", list(COMPLETED))
async def test_failure_after_a_remote_call_runs_exactly_the_right_compensations(
    runtime: Runtime, fail_at: str
) -> None:
    request = _request({"route": "left", "fail_at": fail_at}, service="test.flow_mixed")
    result = await runtime.engine.execute(request)
    assert result.status is TxnStatus.FAILED
    assert result.code == "BUSINESS_RULE_VIOLATION"
    undone = list(reversed(COMPLETED[fail_at]))
    assert [n for a, n, _ in CALLS if a == "undo"] == undone
    assert CALLS[-1][0] == "uncall"  # the remote call, first made, is cancelled last
    assert await _effects(runtime) == []
    (row,) = await _journal(runtime)
    assert (row.status, row.code) == ("failed", "BUSINESS_RULE_VIOLATION")
    states = {e["id"]: e["state"] for e in row.step_log if "id" in e}
    for step in [*undone, "r"]:
        assert states[step] == "compensated"
    assert await _events(runtime) == ["channelhub.test.flow_mixed.failed"]


async def test_a_mixed_flow_keeps_its_effects_when_it_succeeds(runtime: Runtime) -> None:
    result = await runtime.engine.execute(_request({"route": "right"}, service="test.flow_mixed"))
    assert result.status is TxnStatus.SUCCEEDED
    assert await _effects(runtime) == ["a", "b", "c", "right"]
    assert await _events(runtime) == ["channelhub.test.flow_mixed.succeeded"]


async def test_unknown_outcome_leaves_the_transaction_in_doubt(runtime: Runtime) -> None:
    request = TransactionRequest(
        service_id="test.timeout", channel="web", principal=ANONYMOUS, payload={}
    )
    result = await runtime.engine.execute(request)
    assert result.status is TxnStatus.IN_DOUBT
    assert result.code == "BACKEND_TIMEOUT"
    # Nothing is undone yet: the back end may have done it. Recovery decides.
    assert [a for a, _, _ in CALLS] == ["do"]
    (row,) = await _journal(runtime)
    assert row.status == "in_doubt"
    assert await _events(runtime) == []  # no terminal state, no event yet


def _rider_builders(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[], Rider | None] = lambda: None
) -> list[str]:
    """Give test.record and test.observe riders; return the names they were built for."""
    built: list[str] = []

    def build(ctx: StepContext, params: Mapping[str, Any]) -> Rider | None:
        built.append(str(params["name"]))
        return answer()

    monkeypatch.setitem(registry.riders, "test.record", build)
    monkeypatch.setitem(registry.riders, "test.observe", build)
    return built


async def test_riders_are_built_for_each_steps_first_use_on_postgresql(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _rider_builders(monkeypatch)
    result = await runtime.engine.execute(_request({"route": "left"}))
    assert result.status is TxnStatus.SUCCEEDED
    on_postgresql = runtime.db.dialect.name == "postgresql"
    assert built == (["a", "look"] if on_postgresql else [])


async def test_a_flow_that_calls_out_builds_no_rider(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _rider_builders(monkeypatch)
    result = await runtime.engine.execute(_request({}, service="test.flow_mixed"))
    assert result.status is TxnStatus.SUCCEEDED
    assert built == []


async def test_a_step_that_leaves_its_rider_unused_fails_and_undoes_everything(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.db.dialect.name != "postgresql":
        pytest.skip("riders run on PostgreSQL only")
    _rider_builders(
        monkeypatch, lambda: Rider("test.unused", select(literal(1).label("one")), {}, [])
    )
    result = await runtime.engine.execute(_request({"route": "left"}))
    assert (result.status, result.code) == (TxnStatus.FAILED, "INTERNAL_ERROR")
    assert await _effects(runtime) == []
