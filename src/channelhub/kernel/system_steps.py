"""Technical steps of the ``system`` services: they prove the path without touching money."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelhub.kernel.steps import StepContext, registry
from channelhub.kit.clock import business_date

__all__ = ["echo", "server_time"]


@registry.step("system.echo")
async def echo(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Return the request's input as the response data."""
    ctx.data.update(ctx.request.payload)


@registry.step("system.time")
async def server_time(ctx: StepContext, params: Mapping[str, Any]) -> None:
    """Return the server's UTC time and the bank's business date."""
    ctx.data.update(
        server_time=ctx.now.isoformat().replace("+00:00", "Z"),
        business_date=business_date(ctx.now, ctx.time_zone).isoformat(),
        time_zone=ctx.time_zone.key,
    )
