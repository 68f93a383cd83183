"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can do real work)."""

from __future__ import annotations

import orjson
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channelhub.kit.migrations import current_revision, head_revision

__all__ = ["routes"]


def _json(status: int, body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def healthz(request: Request) -> Response:
    """Answer as long as the process serves requests."""
    return _json(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    """Answer 200 only when the database answers and its schema is the code's."""
    runtime = request.app.state.runtime
    checks: dict[str, object] = {}
    try:
        async with runtime.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    head = request.app.state.migration_head
    current = await current_revision(runtime.db) if checks["database"] == "ok" else None
    checks["migrations"] = "ok" if current == head else f"at {current}, code expects {head}"
    ready = all(value == "ok" for value in checks.values())
    return _json(
        200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks}
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]

# Read once at import: the migration scripts do not change while the process runs.
HEAD = head_revision()
