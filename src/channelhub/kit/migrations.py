"""Alembic, driven from code: apply migrations, and tell whether a database is current."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from channelhub.kit.db import normalize_url

__all__ = ["alembic_config", "current_revision", "head_revision", "script_location", "upgrade"]


def script_location() -> Path:
    """Return the migrations folder: inside an installed wheel, or at the top of a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_migrations", package.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("channelhub's migrations folder is missing from this installation")


def alembic_config(url: str) -> Config:
    """Return an Alembic configuration for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # ConfigParser treats % as interpolation; a password may contain one.
    config.set_main_option(
        "sqlalchemy.url", normalize_url(url).render_as_string(False).replace("%", "%%")
    )
    return config


def head_revision() -> str | None:
    """Return the newest migration's revision id."""
    return ScriptDirectory(str(script_location())).get_current_head()


def upgrade(url: str, *, on_step: Callable[[str], None] | None = None) -> None:
    """Apply every pending migration to ``url``, calling ``on_step`` after each one."""
    config = alembic_config(url)
    if on_step is not None:

        def applied(*, step: Any, **_: Any) -> None:
            on_step(f"{step.up_revision_id}: {step.up_revision.doc}")

        config.attributes["on_version_apply"] = applied
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, "head")
        return
    # Alembic's env.py runs its own event loop; inside a running one it needs its own thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, config, "head").result()


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the revision the database is at, or None if it was never migrated."""
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()
    except SQLAlchemyError:
        return None
