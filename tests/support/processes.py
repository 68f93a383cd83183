"""Run the real ``channelhub`` command in subprocesses, as an operator would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

__all__ = ["REPO", "channelhub", "node_env", "start_node", "start_simulator", "stop_all"]

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on (http://[0-9.]+:[0-9]+)")
_SIMULATOR_ADDRESS = re.compile(r"listening on ([0-9.]+):([0-9]+)")


def node_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Return the environment of a test node: its database, the test catalog and steps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELHUB_")}
    env.update(
        PYTHONPATH=str(REPO),
        CHANNELHUB_DATABASE_URL=database_url,
        CHANNELHUB_DATA_DIR=str(data_dir),
        CHANNELHUB_PLUGINS='["tests.support.flow_steps"]',
        CHANNELHUB_CATALOG_PATHS=f'["{REPO / "tests" / "support" / "catalog"}"]',
        CHANNELHUB_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def channelhub(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``channelhub ARGS`` to completion and return what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "channelhub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def start_node(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``channelhub serve --port 0`` and return the process and its base URL once ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channelhub", "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = _LISTENING.search(line)
        if found:
            return process, found.group(1)
    process.kill()
    raise RuntimeError("the node did not report a listening address")


def start_simulator(kind: str, *flags: str) -> tuple[subprocess.Popen[str], str, int, list[str]]:
    """Start ``channelhub simulate KIND --port 0 FLAGS``; return it, its address and what it
    printed up to its faults line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channelhub", "simulate", kind, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("faults:"):
            break
    found = next(
        (_SIMULATOR_ADDRESS.search(line) for line in lines if _SIMULATOR_ADDRESS.search(line)),
        None,
    )
    if found is None:
        process.kill()
        pytest.fail("the simulator did not print its address: " + "".join(lines))
    return process, found.group(1), int(found.group(2)), lines


def stop_all(processes: Iterable[subprocess.Popen[str]]) -> None:
    """Terminate each process, wait for it and close its output."""
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
