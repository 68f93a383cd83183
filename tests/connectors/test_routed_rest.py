"""A routed service over the REST channel, on a real socket: alice's balance comes from the
simulated core through HTTP, and when the core is down the answer is a canonical 503 that
names no address of the bank's network."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from channelhub.connectors.settings import ConnectorSettings
from channelhub.connectors.simulators.core import CoreAccount, CoreSimulator
from tests.security.conftest import SecureNode, login, secure_bank, secure_settings


@pytest.fixture
async def core() -> AsyncIterator[CoreSimulator]:
    simulator = CoreSimulator(accounts={})
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.close()


@pytest.fixture
async def node(database_url: str, tmp_path: Path, core: CoreSimulator) -> AsyncIterator[SecureNode]:
    host, port = core.address
    backend = ConnectorSettings(kind="fixed", host=host, port=port, timeout_ms=500, retries=0)
    settings = secure_settings(database_url, tmp_path).model_copy(
        update={"connectors": {"core": backend}, "routes": {"account.balance": "core-balance"}}
    )
    async with secure_bank(settings) as served:
        number = served.accounts["alice.CNY"]
        core.accounts[number] = CoreAccount(number, "ALICE", "CNY", 777_77)
        yield served


async def test_the_balance_over_http_comes_from_the_core_and_a_dead_core_is_a_clean_503(
    node: SecureNode, core: CoreSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await login(http, node, "alice")
    assert status == 200, body
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    number = node.accounts["alice.CNY"]
    url = node.url("/api/v1/services/account.balance")
    async with http.post(url, json={"account": number}, headers=headers) as answer:
        assert answer.status == 200
        data = (await answer.json())["data"]
    assert data["available_balance"] == "777.77"

    await core.set_faults(down=True)
    async with http.post(url, json={"account": number}, headers=headers) as answer:
        assert answer.status == 503
        text = await answer.text()
    refused = json.loads(text)
    assert refused["code"] == "BACKEND_UNAVAILABLE"
    host, port = core.address
    assert host not in text  # the core's address is logged for operators, never answered
    assert f":{port}" not in text
