"""The software security module: the one place where key material is used.

Secrets the server must read back (TOTP secrets, token signing keys, partner secrets, terminal
keys) are sealed with AES-256-GCM under a key derived from the master key, with what the secret
is for bound in as associated data, so a sealed value moved to another purpose does not open.
Everything that touches keys goes through this small interface so that a hardware security
module can replace it.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "SoftwareSecurityModule"]

_VERSION = "v1"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value does not open: wrong master key, wrong purpose, or tampered with."""


class SoftwareSecurityModule:
    """Seal and open secrets under the master key."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("the master key needs at least 32 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"channelhub/seal/v1"
        ).derive(master_key)
        self._aead = AESGCM(key)

    def seal(self, secret: bytes, purpose: str) -> str:
        """Return ``secret`` encrypted for ``purpose``, as text fit for a column."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret, purpose.encode())
        return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, purpose: str) -> bytes:
        """Return the secret ``seal`` encrypted for ``purpose``.

        Raises:
            SealError: the value was sealed under another key or purpose, or altered.
        """
        version, _, body = sealed.partition(":")
        if version != _VERSION:
            raise SealError("unknown sealed format")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
        except (InvalidTag, ValueError):
            raise SealError("the sealed value does not open") from None
