"""Services routed to the simulated mainframe core by configuration: account.balance and
transfer.internal through the ``fixed`` connector and their mappings, on SQLite and
PostgreSQL, over real sockets; and every way the core can fail them.

The demo bank's alice and bob hold their CNY accounts on the core too (the customer center
keeps who holds which account; the core keeps the money). Each test checks both sides of the
books: the core's balances and the platform's journal and limits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channelhub.config import Settings
from channelhub.connectors.mapping import MappingError, resolve
from channelhub.connectors.simulators.core import CoreAccount, CoreSimulator
from channelhub.kernel.catalog import CatalogError, CompiledStep
from channelhub.kernel.model import TxnStatus
from channelhub.runtime import Runtime
from tests.conftest import make_settings
from tests.connectors.conftest import journal_row, limit_used, open_limited_bank, recovery
from tests.support.bank import Bank, open_bank
from tests.support.clock import at_bank_time

ROUTES = {"account.balance": "core-balance", "transfer.internal": "core-transfer"}
#: The core's own balances for alice and bob, different from the built-in ledger's, so that
#: an answer shows which side it came from.
ALICE_ON_CORE = 1_000_000  # 10,000.00
BOB_ON_CORE = 20_000  # 200.00


@pytest.fixture
async def core() -> AsyncIterator[CoreSimulator]:
    simulator = CoreSimulator(accounts={})
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.close()


def core_settings(
    database_url: str, data_dir: Path, core: CoreSimulator, **connector: Any
) -> Settings:
    host, port = core.address
    backend = {
        "kind": "fixed",
        "host": host,
        "port": port,
        "timeout_ms": 400,
        "retries": 0,
        "breaker": {"failure_threshold": 3, "recovery_seconds": 0.5},
        **connector,
    }
    return make_settings(database_url, data_dir, connectors={"core": backend}, routes=dict(ROUTES))


@pytest.fixture
async def bank(database_url: str, tmp_path: Path, core: CoreSimulator) -> AsyncIterator[Bank]:
    runtime = Runtime.build(core_settings(database_url, tmp_path, core))
    seeded = await open_limited_bank(runtime)
    for who, balance in (("alice", ALICE_ON_CORE), ("bob", BOB_ON_CORE)):
        number = seeded.accounts[f"{who}.CNY"]
        core.accounts[number] = CoreAccount(number, who.upper(), "CNY", balance)
    yield seeded
    await runtime.close()


# --- the happy paths ---------------------------------------------------------------------


async def test_the_balance_comes_from_the_core(bank: Bank, core: CoreSimulator) -> None:
    number = bank.accounts["alice.CNY"]
    result = await bank.call("alice", "account.balance", {"account": number})
    assert result.ok, result
    assert result.data == {
        "number": number,
        "currency": "CNY",
        "ledger_balance": "10000.00",
        "available_balance": "10000.00",
    }


async def test_a_balance_of_someone_elses_account_never_reaches_the_core(
    bank: Bank, core: CoreSimulator
) -> None:
    accepted = core.accepted
    result = await bank.call("alice", "account.balance", {"account": bank.accounts["bob.CNY"]})
    assert result.status is TxnStatus.FAILED
    assert result.code in ("FORBIDDEN", "NOT_FOUND")
    assert core.accepted == accepted  # refused by the customer center, not by the core


async def test_a_transfer_moves_money_on_the_core_only(bank: Bank, core: CoreSimulator) -> None:
    alice, bob = bank.accounts["alice.CNY"], bank.accounts["bob.CNY"]
    ledger_before = await bank.balance(alice)
    result = await bank.call("alice", "transfer.internal", bank.transfer("100.00"))
    assert result.ok, result
    fee = int(result.data["fee"].replace(".", ""))
    assert core.balance(alice) == ALICE_ON_CORE - 100_00 - fee
    assert core.balance(bob) == BOB_ON_CORE + 100_00
    assert result.data["from_available_balance"] == f"{(ALICE_ON_CORE - 100_00 - fee) / 100:.2f}"
    assert await bank.balance(alice) == ledger_before  # the built-in ledger is not the core
    assert await limit_used(bank) == "100.00"  # limits are the platform's, wherever the money


async def test_a_refusal_by_the_core_fails_and_gives_the_limit_back(
    bank: Bank, core: CoreSimulator
) -> None:
    result = await bank.call("alice", "transfer.internal", bank.transfer("10000.00"))
    assert result.status is TxnStatus.FAILED
    assert result.code == "INSUFFICIENT_FUNDS"  # the core's 0051, through the code table
    assert core.balance(bank.accounts["alice.CNY"]) == ALICE_ON_CORE
    assert await limit_used(bank) == "0.00"


# --- in doubt ----------------------------------------------------------------------------


async def test_a_lost_answer_is_settled_at_once_by_the_status_inquiry(
    bank: Bank, core: CoreSimulator
) -> None:
    await core.set_faults(drop_codes=frozenset({"XFER"}))  # applied, never answered
    result = await bank.call("alice", "transfer.internal", bank.transfer("50.00"))
    assert result.ok, result  # the inquiry (STAT) found it applied
    alice = bank.accounts["alice.CNY"]
    fee = int(result.data["fee"].replace(".", ""))
    assert core.balance(alice) == ALICE_ON_CORE - 50_00 - fee
    row = await journal_row(bank, result.txn_id)
    assert row.status == "succeeded"
    assert [e.get("resolved") for e in row.step_log if e.get("step") == "connector.call"] == [
        "done"
    ]
    assert await limit_used(bank) == "50.00"


async def test_a_request_that_never_arrived_is_fenced_off_and_fails(
    bank: Bank, core: CoreSimulator
) -> None:
    await core.set_faults(lose_codes=frozenset({"XFER"}))  # lost on the way to the core
    result = await bank.call("alice", "transfer.internal", bank.transfer("50.00"))
    assert result.status is TxnStatus.FAILED
    assert result.code == "BACKEND_TIMEOUT"
    alice = bank.accounts["alice.CNY"]
    assert core.balance(alice) == ALICE_ON_CORE
    # STAT found nothing, so the reference was reversed before the failure was reported:
    # should the transfer still reach the core, it is refused, never applied.
    entries = [e for e in core.book.entries.values() if e.status == "R"]
    assert len(entries) == 1
    assert entries[0].txn_code == ""  # fenced: reversed before the core ever saw it
    assert await limit_used(bank) == "0.00"


async def test_a_core_that_stays_silent_leaves_it_in_doubt_until_recovery_knows(
    bank: Bank, core: CoreSimulator
) -> None:
    await core.set_faults(drop=True)  # applies everything, answers nothing: STAT too
    payload = bank.transfer("70.00")
    result = await bank.call("alice", "transfer.internal", payload, key="silent-core-1")
    assert result.status is TxnStatus.IN_DOUBT  # never "failed" while it may have happened
    assert result.code == "BACKEND_TIMEOUT"
    alice = bank.accounts["alice.CNY"]
    moved = ALICE_ON_CORE - core.balance(alice)
    assert moved > 70_00  # the core did apply it: the amount and the product's fee

    # While the core stays silent, recovery cannot tell either: still in doubt.
    report = await recovery(bank.runtime).run_once()
    assert report.still_in_doubt == [str(result.txn_id)]
    assert (await journal_row(bank, result.txn_id)).status == "in_doubt"

    await core.set_faults(drop=False)
    await asyncio.sleep(0.6)  # the circuit the silence opened lets a probe through
    report = await recovery(bank.runtime).run_once()
    assert report.completed == [str(result.txn_id)]
    row = await journal_row(bank, result.txn_id)
    assert row.status == "succeeded"
    assert core.balance(alice) == ALICE_ON_CORE - moved  # applied once, kept
    assert await limit_used(bank) == "70.00"
    # The customer's retry with the same key gets the settled outcome, with the data the
    # flow had built before the call (the fee) and the core's answer; nothing runs twice.
    again = await bank.call("alice", "transfer.internal", payload, key="silent-core-1")
    assert again.replayed
    assert again.status is TxnStatus.SUCCEEDED
    assert moved == 70_00 + int(again.data["fee"].replace(".", ""))
    assert again.data["from_available_balance"] == f"{(ALICE_ON_CORE - moved) / 100:.2f}"
    assert core.balance(alice) == ALICE_ON_CORE - moved


async def test_a_node_that_dies_during_the_call_is_settled_by_recovery(
    bank: Bank, core: CoreSimulator
) -> None:
    await core.set_faults(drop_codes=frozenset({"XFER"}))
    alice = bank.accounts["alice.CNY"]
    call = asyncio.create_task(bank.call("alice", "transfer.internal", bank.transfer("40.00")))
    for _ in range(1000):  # until the core has applied it (10 s at most) ...
        if core.balance(alice) != ALICE_ON_CORE:
            break
        await asyncio.sleep(0.01)
    call.cancel()  # ... and the node goes away before any answer
    with pytest.raises(asyncio.CancelledError):
        await call
    await core.set_faults(drop_codes=frozenset())
    report = await recovery(bank.runtime).run_once()
    assert len(report.completed) == 1
    row = await journal_row(bank, uuid.UUID(report.completed[0]))
    assert row.status == "succeeded"
    moved = ALICE_ON_CORE - core.balance(alice)
    assert moved == 40_00 + int(row.response["data"]["fee"].replace(".", ""))
    assert await limit_used(bank) == "40.00"


async def test_garbage_after_a_transfer_is_in_doubt_then_settled(
    bank: Bank, core: CoreSimulator
) -> None:
    await core.set_faults(garbage=True)
    result = await bank.call("alice", "transfer.internal", bank.transfer("30.00"))
    assert result.status is TxnStatus.IN_DOUBT
    assert result.code == "BACKEND_BAD_RESPONSE"
    await core.set_faults(garbage=False)
    await asyncio.sleep(0.6)
    report = await recovery(bank.runtime).run_once()
    assert report.completed == [str(result.txn_id)]
    row = await journal_row(bank, result.txn_id)
    fee = int(row.response["data"]["fee"].replace(".", ""))
    assert core.balance(bank.accounts["alice.CNY"]) == ALICE_ON_CORE - 30_00 - fee
    assert core.balance(bank.accounts["bob.CNY"]) == BOB_ON_CORE + 30_00


async def test_an_unknown_result_code_is_asked_about_not_guessed(
    database_url: str, tmp_path: Path, core: CoreSimulator
) -> None:
    # A mapping whose code table forgot 0051: the core's refusal is a code it does not know.
    text = resolve("core-transfer").read_text(encoding="utf-8")
    forgetful = tmp_path / "forgetful-transfer.yaml"
    layouts = resolve("core-transfer").parent.parent / "simulators" / "core_layouts.yaml"
    forgetful.write_text(
        text.replace('    "0051": INSUFFICIENT_FUNDS\n', "")
        .replace("file: ../simulators/core_layouts.yaml", f"file: {layouts}")
        .replace("inquiry: core-status", f"inquiry: {resolve('core-status')}")
        .replace("reversal: core-reverse", f"reversal: {resolve('core-reverse')}"),
        encoding="utf-8",
    )
    settings = core_settings(database_url, tmp_path, core)
    settings.routes["transfer.internal"] = str(forgetful)
    runtime = Runtime.build(settings)
    at_bank_time(runtime, 14)
    try:
        bank = await open_bank(runtime)
        number = bank.accounts["alice.CNY"]
        core.accounts[number] = CoreAccount(number, "ALICE", "CNY", 100)
        core.accounts[bank.accounts["bob.CNY"]] = CoreAccount(
            bank.accounts["bob.CNY"], "BOB", "CNY", 0
        )
        result = await bank.call("alice", "transfer.internal", bank.transfer("20.00"))
        # Unknown after a money-changing request: in doubt, so the inquiry asked; the core
        # said declined, so it failed, with the code the table gives unknown codes.
        assert result.status is TxnStatus.FAILED
        assert result.code == "BACKEND_BAD_RESPONSE"
        assert core.balance(number) == 100
        row = await journal_row(bank, result.txn_id)
        assert [e.get("resolved") for e in row.step_log if e.get("step") == "connector.call"] == [
            "not_done"
        ]
    finally:
        await runtime.close()


# --- a dead core -------------------------------------------------------------------------


async def test_a_dead_core_is_cut_off_probed_and_restored(bank: Bank, core: CoreSimulator) -> None:
    number = bank.accounts["alice.CNY"]
    await core.set_faults(down=True)
    codes = []
    for _ in range(5):
        result = await bank.call("alice", "account.balance", {"account": number})
        assert result.status is TxnStatus.FAILED
        codes.append((result.code, result.details.get("reason")))
    assert all(code == "BACKEND_UNAVAILABLE" for code, _ in codes)
    # After three failures (the threshold) the circuit is open: no connection is tried.
    assert codes[-1][1] == "circuit_open"
    accepted = core.accepted
    await core.set_faults(down=False)
    result = await bank.call("alice", "account.balance", {"account": number})
    assert result.details.get("reason") == "circuit_open"  # still open: fast, untried
    assert core.accepted == accepted
    await asyncio.sleep(0.6)  # recovery_seconds: the next call is the probe
    result = await bank.call("alice", "account.balance", {"account": number})
    assert result.ok, result
    assert result.data["available_balance"] == "10000.00"


# --- configuration mistakes stop the node at start ---------------------------------------


def test_a_route_to_a_mapping_that_does_not_exist_stops_the_node(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        sqlite_url,
        tmp_path,
        connectors={"core": {"kind": "fixed", "host": "127.0.0.1", "port": 7037}},
        routes={"account.balance": "no-such-mapping"},
    )
    with pytest.raises(MappingError, match="no-such-mapping"):
        Runtime.build(settings)


def test_a_route_to_a_back_end_that_is_not_configured_stops_the_node(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, tmp_path, routes={"account.balance": "core-balance"})
    with pytest.raises(MappingError, match="no back end 'core' is configured"):
        Runtime.build(settings)


def test_a_route_for_a_service_without_a_routable_step_is_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        sqlite_url,
        tmp_path,
        connectors={"core": {"kind": "fixed", "host": "127.0.0.1", "port": 7037}},
        routes={"account.list": "core-debit", "no.such": "core-debit"},
    )
    with pytest.raises(CatalogError) as raised:
        Runtime.build(settings)
    reasons = [problem.reason for problem in raised.value.problems]
    assert any("no step of the flow is routable" in reason for reason in reasons)
    assert any("'no.such': no such service" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("routes", "reason"),
    [
        # A mapping made for another service.
        ({"transfer.internal": "core-balance"}, "it cannot answer 'transfer.internal'"),
        # An inquiry in place of a posting: the transfer would "succeed" and move nothing.
        ({"transfer.internal": "core-status"}, "changes state, but its route only reads it"),
        # A posting in place of an inquiry.
        ({"account.balance": "core-debit"}, "only reads state, but its route changes it"),
    ],
)
def test_a_route_through_a_mapping_of_the_wrong_kind_stops_the_node(
    sqlite_url: str, tmp_path: Path, routes: dict[str, str], reason: str
) -> None:
    settings = make_settings(
        sqlite_url,
        tmp_path,
        connectors={"core": {"kind": "fixed", "host": "127.0.0.1", "port": 7037}},
        routes=routes,
    )
    with pytest.raises((MappingError, CatalogError)) as raised:
        Runtime.build(settings)
    assert reason in str(raised.value)


def test_a_money_changing_mapping_that_could_never_be_settled_stops_the_node(
    sqlite_url: str, tmp_path: Path
) -> None:
    text = resolve("core-transfer").read_text(encoding="utf-8")
    layouts = resolve("core-transfer").parent.parent / "simulators" / "core_layouts.yaml"
    unsettled = tmp_path / "unsettled.yaml"
    unsettled.write_text(
        text.replace("inquiry: core-status\n", "")
        .replace("reversal: core-reverse\n", "")
        .replace("file: ../simulators/core_layouts.yaml", f"file: {layouts}"),
        encoding="utf-8",
    )
    settings = make_settings(
        sqlite_url,
        tmp_path,
        connectors={"core": {"kind": "fixed", "host": "127.0.0.1", "port": 7037}},
        routes={"transfer.internal": str(unsettled)},
    )
    with pytest.raises(MappingError, match="could never be settled"):
        Runtime.build(settings)


def test_a_mapping_framed_unlike_its_back_end_stops_the_node(
    sqlite_url: str, tmp_path: Path
) -> None:
    backend = {"kind": "fixed", "host": "127.0.0.1", "port": 7037, "framing": {"prefix_bytes": 4}}
    settings = make_settings(
        sqlite_url,
        tmp_path,
        connectors={"core": backend},
        routes={"account.balance": "core-balance"},
    )
    with pytest.raises(MappingError, match="4-byte prefix"):
        Runtime.build(settings)


async def test_a_route_to_builtin_keeps_the_built_in_ledger(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, tmp_path, routes={"account.balance": "builtin"})
    runtime = Runtime.build(settings)
    try:
        service = runtime.catalog.get("account.balance", 1)
        assert service is not None
        assert [node.spec.name for node in service.flow if isinstance(node, CompiledStep)] == [
            "cau.accounts.owned",
            "cau.accounts.balance",
        ]
    finally:
        await runtime.close()
