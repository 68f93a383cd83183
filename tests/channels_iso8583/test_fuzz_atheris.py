"""The codec under atheris, coverage-guided, from a real withdrawal as its seed: skipped where
atheris does not install (it ships wheels for Linux on x86-64 only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from channelhub.channels.iso8583.terminal import Terminal
from channelhub.demo.identities import DEMO_MAC_KEY, DEMO_PIN_KEY

HARNESS = Path(__file__).with_name("fuzz_codec.py")
RUNS = 50_000


def test_the_codec_survives_coverage_guided_fuzzing(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris installs on Linux x86-64 with CPython 3.11")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    device = Terminal(
        "ATM00001", pin_key=bytes.fromhex(DEMO_PIN_KEY), mac_key=bytes.fromhex(DEMO_MAC_KEY)
    )
    seeds = {
        "withdraw": device.financial(
            "withdraw", pan="6234560000000016", pin="1234", amount_minor=10_000
        ),
        "balance": device.financial("balance", pan="6234560000000016", pin="1234"),
        "echo": device.echo(),
    }
    for name, fields in seeds.items():
        (corpus / name).write_bytes(device.pack(dict(fields)))
    reversal = device.reversal(seeds["withdraw"])
    (corpus / "reversal").write_bytes(device.pack(dict(reversal)))
    run = subprocess.run(
        [sys.executable, str(HARNESS), f"-runs={RUNS}", "-max_len=1024", str(corpus)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Done {RUNS} runs" in run.stderr, run.stderr[-2000:]
