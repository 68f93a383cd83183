"""Structured JSON logs; every line written during a transaction carries its ``txn_id``."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

__all__ = ["configure_logging", "get_logger"]


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    """Send channelhub's and the libraries' logs to stderr, one JSON object a line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # One line per request is the access log's job, not the application's; it is off by default.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Database drivers log every statement (SQLAlchemy at INFO) and its parameters (the
    # drivers at DEBUG), and parameters hold what people typed (a password in the username
    # field, say): they only ever log warnings.
    for name in _PARAMETER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


_PARAMETER_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy.engine", "sqlalchemy.pool")


def get_logger(name: str) -> Any:
    """Return a structured logger named ``name``."""
    return structlog.stdlib.get_logger(name)
