"""Steps for tests: they record what ran, fail on request, and survive process death.

Loaded as a plugin (``plugins = ["tests.support.flow_steps"]``), the way a bank adds its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, insert

from channelhub.kernel import OutcomeUnknown, StepContext, registry
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.ids import new_id
from channelhub.models import OutboxEvent

#: (action, step name, txn id) in the order they ran, for in-process tests.
CALLS: list[tuple[str, str, str]] = []

#: test.record's effect in the database: an outbox row of this type prefix per step that ran.
DID = "test.did."
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]


class InjectedFailure(ChannelhubError):
    """The failure a test asked for."""

    code = "BUSINESS_RULE_VIOLATION"


def _fail_here(ctx: StepContext, name: str) -> bool:
    return ctx.request.payload.get("fail_at") == name


@registry.step("test.record", mutates=True)
async def record(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Record that step ``params.name`` ran; fail if the input's ``fail_at`` names it."""
    name = str(params["name"])
    if _fail_here(ctx, name):
        raise InjectedFailure(f"failure injected at {name}", details={"step": name})
    CALLS.append(("do", name, str(ctx.txn_id)))
    # The step's real effect, in the transaction's database transaction.
    await ctx.session.execute(
        insert(_OUTBOX).values(
            id=new_id(),
            type=DID + name,
            source="/tests",
            subject=str(ctx.txn_id),
            time=ctx.now,
            data={},
        )
    )
    ctx.data.setdefault("ran", []).append(name)
    return {"name": name}


@registry.compensation("test.unrecord")
async def unrecord(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Undo step ``params.name``: delete its row, and record that it was undone."""
    name = str(params["name"])
    CALLS.append(("undo", name, str(ctx.txn_id)))
    await ctx.session.execute(
        delete(_OUTBOX).where(_OUTBOX.c.type == DID + name, _OUTBOX.c.subject == str(ctx.txn_id))
    )


@registry.step("test.remote", mutates=True, external=True)
async def remote(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Act like a call to another system that succeeds; its flow is then not atomic."""
    CALLS.append(("call", "remote", str(ctx.txn_id)))
    return {"called": True}


@registry.compensation("test.unremote", external=True)
async def unremote(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Record the cancellation of the remote call."""
    CALLS.append(("uncall", "remote", str(ctx.txn_id)))


@registry.step("test.observe")
async def observe(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Record a read-only step (no compensation needed)."""
    name = str(params["name"])
    if _fail_here(ctx, name):
        raise InjectedFailure(f"failure injected at {name}", details={"step": name})
    CALLS.append(("observe", name, str(ctx.txn_id)))


@registry.step("test.file_append", mutates=True, external=True)
async def file_append(ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Append ``do <txn>`` to the input's ``file``: an effect outside the database."""
    path = Path(str(ctx.request.payload["file"]))
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"do {ctx.txn_id}\n")
    return {"file": str(path)}


@registry.compensation("test.file_undo", external=True)
async def file_undo(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Append ``undo <txn>`` to the file the step wrote (safe if the step never ran)."""
    if output is None:
        return
    with Path(output["file"]).open("a", encoding="utf-8") as handle:
        handle.write(f"undo {ctx.txn_id}\n")


@registry.step("test.hang", external=True)
async def hang(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Never return: the process is killed while it waits here."""
    marker = ctx.request.payload.get("marker")
    if marker:
        Path(str(marker)).write_text(str(ctx.txn_id), encoding="utf-8")
    await asyncio.sleep(3600)


@registry.step("test.timeout", external=True)
async def timeout(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Act like a back end that did not answer in time."""
    raise OutcomeUnknown("the back end did not answer")


@registry.compensation("test.cancel", external=True)
async def cancel(
    ctx: StepContext, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> None:
    """Record the cancellation of a call whose outcome was unknown."""
    CALLS.append(("cancel", "timeout", str(ctx.txn_id)))
