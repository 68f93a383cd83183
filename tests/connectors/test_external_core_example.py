"""examples/external-core: its settings and the core's accounts file run as the README says,
against a simulated core over a real socket; and ``simulate core --accounts`` refuses a bad
file clearly."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channelhub.connectors.simulators.core import CoreSimulator, load_accounts
from channelhub.runtime import Runtime
from tests.conftest import make_settings
from tests.connectors.conftest import open_limited_bank
from tests.support.processes import REPO, channelhub, node_env

EXAMPLE = REPO / "examples" / "external-core"


@pytest.fixture
async def core() -> AsyncIterator[CoreSimulator]:
    accounts = load_accounts((EXAMPLE / "core-accounts.yaml").read_text(encoding="utf-8"))
    simulator = CoreSimulator(accounts)
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.close()


async def test_the_example_routes_alices_balance_and_transfer_to_the_core(
    database_url: str, tmp_path: Path, core: CoreSimulator
) -> None:
    example = tomllib.loads((EXAMPLE / "channelhub.toml").read_text(encoding="utf-8"))
    example["connectors"]["core"]["port"] = core.address[1]  # the README's is 7037
    settings = make_settings(database_url, tmp_path, **example)
    runtime = Runtime.build(settings)
    try:
        bank = await open_limited_bank(runtime)
        alice, bob = bank.accounts["alice.CNY"], bank.accounts["bob.CNY"]
        # The accounts file holds the numbers a fresh demo gives alice and bob.
        assert sorted(core.accounts) == sorted([alice, bob])
        core.accounts[alice].balance = 1_234_567  # so the answer shows where it came from
        balance = await bank.call("alice", "account.balance", {"account": alice})
        assert balance.data["available_balance"] == "12345.67"
        moved = await bank.call("alice", "transfer.internal", bank.transfer("100.00"))
        assert moved.ok, moved
        assert core.balance(bob) == 5_000_000 + 100_00
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("- {number: 12, holder: A, currency: CNY, balance: '1.00'}", "number is up to 20 digits"),
        ("- {number: '1', holder: A, currency: CNY, balance: '1.001'}", "account 1"),
        ("- {number: '1', holder: A, currency: CNY}", "exactly number, holder, currency"),
        ("{not: a list}", "a non-empty list"),
        ("- [unclosed", "not YAML"),
    ],
)
def test_simulate_core_refuses_a_bad_accounts_file(
    sqlite_url: str, tmp_path: Path, content: str, reason: str
) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(content, encoding="utf-8")
    done = channelhub(
        "simulate",
        "core",
        "--port",
        "0",
        "--accounts",
        str(accounts),
        env=node_env(sqlite_url, tmp_path),
    )
    assert done.returncode == 2
    assert reason in done.stderr
