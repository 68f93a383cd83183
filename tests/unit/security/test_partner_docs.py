"""docs/partners.md's worked example is what the code computes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from channelhub.security.signing import sign, string_to_sign, verify

DOC = Path(__file__).resolve().parents[3] / "docs" / "partners.md"
BODY = b'{"account":"0101000000000189"}'
ARGS = (
    "POST",
    "/open/v1/services/account.balance",
    "",
    "1767225600",
    "3f9a2c71-0b5e-4d8a-9e61-2b7f0c4d8e15",
    BODY,
)


def test_the_documented_example_matches_the_code() -> None:
    doc = DOC.read_text()
    digest = hashlib.sha256(BODY).hexdigest()
    signature = sign("fintech-demo-secret-2026", *ARGS)
    assert f"\n{digest}\n" in doc
    assert f"\n{signature}\n" in doc
    assert repr(string_to_sign(*ARGS)) in doc
    assert f"body ({len(BODY)} bytes" in doc
    assert re.fullmatch(r"[0-9a-f]{64}", signature)


def test_a_changed_byte_or_line_breaks_the_signature() -> None:
    signature = sign("fintech-demo-secret-2026", *ARGS)
    assert verify("fintech-demo-secret-2026", signature, *ARGS)
    for index, changed in ((0, "GET"), (2, "x=1"), (3, "1767225601"), (4, "other-nonce")):
        args = list(ARGS)
        args[index] = changed
        assert not verify("fintech-demo-secret-2026", signature, *args)  # type: ignore[arg-type]
    assert not verify("fintech-demo-secret-2026", signature, *ARGS[:5], BODY + b" ")
    assert not verify("another-secret-000", signature, *ARGS)
