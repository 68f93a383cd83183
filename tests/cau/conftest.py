"""A seeded demo bank on each database."""

from __future__ import annotations

import pytest

from channelhub.runtime import Runtime
from tests.support.bank import Bank, open_bank


@pytest.fixture
async def bank(runtime: Runtime) -> Bank:
    """The demo bank: alice, bob, acme, their accounts and cards."""
    return await open_bank(runtime)
