"""``channelhub simulate clearing``, started as an operator would, answered over a real socket;
and an ``iso20022`` back end built from a settings file, as a node builds it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from channelhub.config import load_settings
from channelhub.connectors.base import BackendTimeout
from channelhub.connectors.iso20022 import Iso20022Connector
from channelhub.connectors.simulators.clearing import ClearingSimulator
from channelhub.governance.registry import BackendRegistry
from tests.connectors.iso20022.conftest import LIU, SUN_CLOSED, ZHAO, inquiry, transfer
from tests.support.processes import start_simulator


def start_clearing(*flags: str) -> tuple[subprocess.Popen[str], str, int, list[str]]:
    """Start ``channelhub simulate clearing --port 0 FLAGS`` (``start_simulator``)."""
    return start_simulator("clearing", *flags)


async def test_the_simulated_clearing_house_prints_its_accounts_and_answers(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_clearing, "--ceiling", "100.00")
    processes.append(process)
    printed = "".join(lines)
    for bic, account in (LIU, SUN_CLOSED, ZHAO):
        assert bic in printed
        assert account in printed
    assert "closed" in printed
    assert "100.00" in printed
    connector = Iso20022Connector("clearing", base_url=f"http://{host}:{port}")
    try:
        settled = await connector.call("credit_transfer", transfer(LIU, "100.00"), timeout=10)
        refused = await connector.call("credit_transfer", transfer(LIU, "100.01"), timeout=10)
    finally:
        await connector.close()
    assert settled["status"] == "ACSC"
    assert (refused["status"], refused["reason"]) == ("RJCT", "AM02")


async def test_the_drop_flag_leaves_a_transfer_unanswered_in_doubt(
    processes: list[subprocess.Popen[str]],
) -> None:
    process, host, port, lines = await asyncio.to_thread(start_clearing, "--drop")
    processes.append(process)
    assert "drop=True" in "".join(lines)
    connector = Iso20022Connector("clearing", base_url=f"http://{host}:{port}")
    request = transfer(LIU, "2.00")
    try:
        with pytest.raises(BackendTimeout) as caught:
            await connector.call("credit_transfer", request, timeout=1)
        answer = await connector.call("status", inquiry(request), timeout=10)
    finally:
        await connector.close()
    assert caught.value.in_doubt
    assert answer["status"] == "ACSC"


async def test_an_iso20022_back_end_is_built_from_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clearing: ClearingSimulator
) -> None:
    path = tmp_path / "channelhub.toml"
    path.write_text(
        f"""
[connectors.clearing]
kind = "iso20022"
url = "{clearing.url}"
timeout_ms = 3000

[connectors.clearing.operations.status]
idempotent = true
"""
    )
    monkeypatch.setenv("CHANNELHUB_CONFIG", str(path))
    registry = BackendRegistry(load_settings(data_dir=tmp_path).connectors)
    try:
        backend = registry.get("clearing")
        assert isinstance(backend.connector, Iso20022Connector)
        request = transfer(ZHAO, "8.00")
        assert (await backend.call("credit_transfer", request))["status"] == "ACSC"
        assert (await backend.call("status", inquiry(request)))["status"] == "ACSC"
    finally:
        await registry.close()
    assert clearing.credited(ZHAO[1]) == 800
