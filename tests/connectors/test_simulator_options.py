"""The simulators' command lines refuse a bad ceiling before they listen."""

from __future__ import annotations

import os

import pytest

from tests.support.processes import channelhub


@pytest.mark.parametrize("kind", ["switch", "clearing"])
@pytest.mark.parametrize("ceiling", ["lots", "-5.00", "0", "1.234"])
def test_a_bad_ceiling_is_refused(kind: str, ceiling: str) -> None:
    finished = channelhub("simulate", kind, "--ceiling", ceiling, env=dict(os.environ))
    assert finished.returncode == 2
    assert "--ceiling" in finished.stderr
