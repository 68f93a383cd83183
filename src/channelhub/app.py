"""Assemble the ASGI application of a node from its settings. Nothing imports this module."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from channelhub.channels import openapi, rest, teller
from channelhub.channels.iso8583 import Iso8583Server, MessageProcessor, ServerLimits
from channelhub.channels.iso8583.expiry import (
    AUTHORIZATION_EXPIRY_SECONDS,
    release_expired_authorizations,
)
from channelhub.channels.iso20022 import api as interbank
from channelhub.config import Settings, load_settings
from channelhub.kernel import lookup
from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.kit.logging import configure_logging, get_logger
from channelhub.kit.loops import Loops
from channelhub.limits import api as limits_api
from channelhub.ops import health, metrics
from channelhub.risk import api as risk_api
from channelhub.runtime import Runtime, data_key
from channelhub.security import api as security_api

__all__ = ["create_app"]

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """Return the node's ASGI app; the runtime is built here and opened in the lifespan."""
    settings = settings or load_settings()
    configure_logging(level=settings.log.level, json=settings.log.json_format)
    runtime = Runtime.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        terminals = await _start_iso8583(runtime)
        app.state.iso8583 = terminals
        loops = Loops()
        runtime.schedule(loops)
        # Any node may release authorizations nobody completed, whether it serves terminals.
        hold_days = settings.iso8583.authorization_hold_days
        loops.every(
            AUTHORIZATION_EXPIRY_SECONDS,
            lambda: release_expired_authorizations(
                runtime.engine, hold_days=hold_days, now=utc_now()
            ),
            name="authorization_expiry_round",
        )
        if settings.recovery.enabled:
            loops.every(
                settings.recovery.interval_seconds,
                runtime.recovery.run_pass,
                name="recovery_pass",
                first_after=0,
            )
        log.info("node_started", node_id=settings.node_id, services=len(runtime.catalog))
        try:
            yield
        finally:
            await loops.stop()
            if terminals is not None:
                await terminals.close()
            await runtime.close()

    # Plain Starlette at the top: the transaction path must not pay for FastAPI's middleware
    # (telemetry, body limits, dependency injection). Management APIs built with FastAPI are
    # mounted under their own prefix.
    app = Starlette(
        routes=[
            *rest.routes,
            *rest.auth_routes,
            *teller.routes,
            *openapi.routes,
            *interbank.routes,
            *security_api.routes,
            *limits_api.routes,
            *risk_api.routes,
            *health.routes,
            *metrics.routes,
        ],
        lifespan=lifespan,
        exception_handlers={Exception: _internal_error},
    )
    app.state.runtime = runtime
    app.state.engine = runtime.engine
    app.state.security = runtime.security
    app.state.max_body_bytes = settings.http.max_body_bytes
    app.state.migration_head = health.HEAD
    return app


async def _start_iso8583(runtime: Runtime) -> Iso8583Server | None:
    """Start the ATM and POS channel when the settings give it a port."""
    options = runtime.settings.iso8583
    if options.port is None:
        return None
    processor = MessageProcessor(
        engine=runtime.engine, security=runtime.security, data_key=data_key(runtime.settings)
    )
    limits = ServerLimits(
        max_message_bytes=options.max_message_bytes,
        read_timeout_seconds=options.read_timeout_seconds,
        idle_timeout_seconds=options.idle_timeout_seconds,
        max_connections=options.max_connections,
        max_in_flight=options.max_in_flight,
    )
    server = Iso8583Server(processor, limits)
    await server.start(options.host, options.port)
    return server


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected failure with the envelope; the trace goes to the log only."""
    error_id = new_id()
    log.error("unhandled_error", error_id=str(error_id), path=request.url.path[:200], exc_info=exc)
    entry = lookup("INTERNAL_ERROR")
    body = {
        "txn_id": str(error_id),
        "status": "failed",
        "code": entry.code,
        "message": entry.message_en,
        "data": {},
    }
    return Response(orjson.dumps(body), status_code=500, media_type="application/json")
