"""The security center's pure pieces: TOTP steps, password rules, sealing, the audit hash,
token signing and verification."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.security import totp
from channelhub.security.audit import GENESIS, record_hash
from channelhub.security.passwords import Passwords, password_problem
from channelhub.security.ssm import SealError, SoftwareSecurityModule
from channelhub.security.tokens import InvalidToken, KeyPair, TokenSigner, TokenVerifier

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = dt.datetime(2026, 12, 1, 8, 0, 15, tzinfo=dt.UTC)
STEP = int(NOW.timestamp()) // 30


def _code(step: int) -> str:
    return pyotp.TOTP(SECRET).generate_otp(step)


def test_rfc6238_reference_vector() -> None:
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 in 8 digits, 287082 in 6. The secret is
    # the ASCII "12345678901234567890" in base32.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    at = dt.datetime.fromtimestamp(59, tz=dt.UTC)
    assert totp.matching_step(secret, "287082", now=at, last_step=None, drift=0) == 1


def test_codes_within_the_drift_window_match_their_own_step() -> None:
    for offset in (-1, 0, 1):
        step = STEP + offset
        assert totp.matching_step(SECRET, _code(step), now=NOW, last_step=None, drift=1) == step
    assert totp.matching_step(SECRET, _code(STEP + 2), now=NOW, last_step=None, drift=1) is None
    assert totp.matching_step(SECRET, _code(STEP - 1), now=NOW, last_step=None, drift=0) is None


def test_a_code_is_never_accepted_for_a_step_already_used() -> None:
    assert totp.matching_step(SECRET, _code(STEP), now=NOW, last_step=STEP, drift=1) is None
    assert totp.matching_step(SECRET, _code(STEP - 1), now=NOW, last_step=STEP, drift=1) is None
    assert totp.matching_step(SECRET, _code(STEP + 1), now=NOW, last_step=STEP, drift=1) == (
        STEP + 1
    )


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "１２３４５６", " 123456"])
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.matching_step(SECRET, code, now=NOW, last_step=None, drift=4) is None


def test_new_secrets_are_160_bits_and_provisioning_uris_name_the_issuer() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32
    uri = totp.provisioning_uri(secret, account="alice", issuer="Demo Bank")
    assert uri.startswith("otpauth://totp/Demo%20Bank:alice?secret=")
    assert "issuer=Demo%20Bank" in uri


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 10"),
        ("x" * 129, "at most 128"),
        ("alice-Demo-2026", "username"),
        ("aaaaaaaaaaaaab", "4 different"),
        ("Correct-Horse-7", None),
    ],
)
def test_password_rules(password: str, problem: str | None) -> None:
    found = password_problem(password, username="alice")
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_argon2id_hashes_verify_and_unknown_users_never_do() -> None:
    passwords = Passwords(memory_kib=19_456, time_cost=2, parallelism=1)
    stored = passwords.hash("Correct-Horse-7")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify(stored, "Correct-Horse-7")
    assert not passwords.verify(stored, "Correct-Horse-8")
    assert not passwords.verify(None, "channelhub: no such user")  # the dummy's own text
    assert not passwords.verify("not a hash", "x")
    stronger = Passwords(memory_kib=32_768, time_cost=3, parallelism=1)
    assert stronger.needs_rehash(stored)
    assert not passwords.needs_rehash(stored)


@given(st.binary(max_size=512), st.text(min_size=1, max_size=40))
def test_sealed_secrets_open_only_under_their_key_and_purpose(secret: bytes, purpose: str) -> None:
    ssm = SoftwareSecurityModule(b"k" * 32)
    sealed = ssm.seal(secret, purpose)
    if len(secret) >= 16:  # a short value may turn up in base64 text by chance
        assert secret not in sealed.encode()
    assert ssm.open(sealed, purpose) == secret
    with pytest.raises(SealError):
        ssm.open(sealed, purpose + "x")
    with pytest.raises(SealError):
        SoftwareSecurityModule(b"j" * 32).open(sealed, purpose)


def test_a_tampered_or_foreign_sealed_value_does_not_open() -> None:
    ssm = SoftwareSecurityModule(b"k" * 40)
    sealed = ssm.seal(b"totp secret", "totp")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    for bad in (flipped, "v2:" + sealed[3:], "v1:!!!", "", "v1:"):
        with pytest.raises(SealError):
            ssm.open(bad, "totp")
    with pytest.raises(ValueError, match="32 bytes"):
        SoftwareSecurityModule(b"short")


def test_the_audit_hash_covers_every_field_and_the_previous_hash() -> None:
    fields = {"seq": 1, "action": "login", "at": NOW, "details": {"b": 1, "a": 2}}
    first = record_hash(GENESIS, fields)
    assert first == record_hash(GENESIS, {**fields, "details": {"a": 2, "b": 1}})
    assert first == record_hash(
        GENESIS, {**fields, "at": NOW.astimezone(dt.timezone(dt.timedelta(hours=8)))}
    )
    assert first != record_hash("1" * 64, fields)
    for key, value in (("seq", 2), ("action", "logout"), ("details", {"a": 2})):
        assert first != record_hash(GENESIS, {**fields, key: value})


def _signed(key: KeyPair, *, now: dt.datetime, **claims: str) -> str:
    signer = TokenSigner(
        key,
        issuer=claims.get("issuer", "bank"),
        audience=claims.get("audience", "api"),
        lifetime=300,
    )
    return signer.issue(
        subject_kind="customer",
        subject_id="u1",
        session_id="s1",
        channel="mobile",
        auth_level="password",
        scopes=frozenset({"b", "a"}),
        device_id="phone",
        extra={"cid": "c1"},
        now=now,
    )


def test_tokens_verify_with_their_claims_and_are_refused_when_revoked_or_expired() -> None:
    key = KeyPair.generate("k1")
    verifier = TokenVerifier(issuer="bank", audience="api")
    verifier.set_keys([KeyPair.from_jwk(key.public_jwk())])
    now = dt.datetime.now(dt.UTC)
    token = _signed(key, now=now)
    claims = verifier.verify(token)
    assert (claims.subject_id, claims.session_id, claims.channel) == ("u1", "s1", "mobile")
    assert claims.scopes == {"a", "b"}
    assert claims.device_id == "phone"
    assert claims.extra == {"cid": "c1"}
    # The cached answer is refused too once the token expires or its session is revoked.
    with pytest.raises(InvalidToken):
        verifier.verify(token, now=now.timestamp() + 400)
    verifier.verify(token)
    verifier.revoke(["s1"])
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    verifier.replace_revocations([])
    assert verifier.verify(token).subject_id == "u1"
    for wrong in (
        _signed(key, now=now, issuer="other"),
        _signed(key, now=now, audience="other"),
        _signed(KeyPair.generate("k2"), now=now),
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(wrong)
    # Keys replaced: tokens of a key no longer held are refused, even from the cache.
    verifier.set_keys([KeyPair.generate("k3")])
    with pytest.raises(InvalidToken):
        verifier.verify(token)
