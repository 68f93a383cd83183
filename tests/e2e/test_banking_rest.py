"""The banking services over the REST channel, before the security center issues logins."""

from __future__ import annotations

import aiohttp
import pytest

from channelhub.config import Settings
from channelhub.runtime import Runtime
from tests.support.bank import open_bank

pytestmark = pytest.mark.asyncio


async def test_products_are_public_and_accounts_need_a_login(
    settings: Settings, node: str, http: aiohttp.ClientSession
) -> None:
    runtime = Runtime.build(settings)
    try:
        await open_bank(runtime)
    finally:
        await runtime.close()
    async with http.post(
        f"{node}/api/v1/services/product.list", json={"type": "term_deposit"}
    ) as answer:
        body = await answer.json()
    assert answer.status == 200, body
    assert {p["code"] for p in body["data"]["products"]} == {"TD-CNY-3M", "TD-CNY-12M", "TD-USD-6M"}

    async with http.post(f"{node}/api/v1/services/account.list", json={}) as answer:
        body = await answer.json()
    assert answer.status == 401
    assert body["code"] == "UNAUTHENTICATED"
    assert body["data"] == {}

    async with http.get(f"{node}/openapi.json") as answer:
        spec = await answer.json()
    assert "/api/v1/services/transfer.internal" in spec["paths"]
