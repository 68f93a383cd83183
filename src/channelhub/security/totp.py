"""Time-based one-time passwords (RFC 6238): six digits, 30-second steps, SHA-1, as every
authenticator app speaks them. Pure: the caller passes the time and the last step used."""

from __future__ import annotations

import datetime as dt
import hmac

import pyotp

__all__ = ["STEP_SECONDS", "matching_step", "new_secret", "provisioning_uri"]

STEP_SECONDS = 30
DIGITS = 6


class _TOTP(pyotp.TOTP):
    # pyotp refuses secrets under 112 bits; 80-bit secrets (16 base32 characters) are what
    # many authenticator apps were enrolled with, and what the demo identities use. New
    # secrets are 160 bits (``new_secret``).
    min_secret_length_bits = 80


def new_secret() -> str:
    """Return a fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """Return the ``otpauth://`` URI an authenticator app reads from a QR code."""
    return _TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(
    secret: str, code: str, *, now: dt.datetime, last_step: int | None, drift: int
) -> int | None:
    """Return the time step ``code`` is valid for, within ``drift`` steps of ``now``, if that
    step is later than ``last_step`` (each code is good once); else None."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = _TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    found = None
    # Every candidate is compared, so the time taken does not depend on which one matched.
    for step in range(current - drift, current + drift + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (
            last_step is None or step > last_step
        ):
            found = step
    return found
