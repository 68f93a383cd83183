"""The software security module: the one place where key material is used.

Secrets the server must read back (TOTP secrets, token signing keys, partner secrets, terminal
keys) are sealed with AES-256-GCM under a key derived from the master key, with what the secret
is for bound in as associated data, so a sealed value moved to another purpose does not open.
Everything that touches keys goes through this small interface so that a hardware security
module can replace it.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "SealError",
    "SoftwareSecurityModule",
    "check_value",
    "clear_pin_block",
    "encrypted_pin_block",
    "pin_block_format0",
    "retail_mac",
]

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

    # --- terminal keys: what a payment HSM does for an ATM or POS terminal ---

    def new_terminal_key(self, purpose: str) -> tuple[str, str]:
        """Make a double-length triple-DES key; return it sealed, and its check value."""
        key = os.urandom(16)
        return self.seal(key, purpose), check_value(key)

    def pin_matches(
        self,
        sealed_pin_key: str,
        purpose: str,
        pin_block: str,
        pan: str,
        check: Callable[[str], bool],
    ) -> bool:
        """Decrypt an ISO 9564 format 0 PIN block under the terminal's PIN key and hand the
        PIN to ``check`` (which compares it with the card's verifier); the clear PIN never
        leaves this method. A malformed block is a wrong PIN."""
        try:
            raw = bytes.fromhex(pin_block)
        except ValueError:
            return False
        if len(raw) != 8:
            return False
        key = self.open(sealed_pin_key, purpose)
        clear = _des(key, raw, decrypt=True)
        pin = clear_pin_block(clear, pan)
        return pin is not None and check(pin)

    def mac_matches(self, sealed_mac_key: str, purpose: str, data: bytes, mac: str) -> bool:
        """Tell, in constant time, whether ``mac`` (16 hex digits) is the retail MAC of
        ``data`` under the terminal's MAC key."""
        key = self.open(sealed_mac_key, purpose)
        return hmac.compare_digest(retail_mac(key, data).upper(), mac.upper())

    def mac(self, sealed_mac_key: str, purpose: str, data: bytes) -> str:
        """Return the retail MAC of ``data`` under the terminal's MAC key (for answers)."""
        return retail_mac(self.open(sealed_mac_key, purpose), data)


def _des(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    """One block through single DES (8-byte key) or two-key triple DES (16-byte key)."""
    full = key * 3 if len(key) == 8 else key + key[:8] if len(key) == 16 else key
    cipher = Cipher(TripleDES(full), modes.ECB())  # noqa: S305  (single blocks, by design)
    worker = cipher.decryptor() if decrypt else cipher.encryptor()
    return worker.update(block) + worker.finalize()


def check_value(key: bytes) -> str:
    """Return a key's check value: the first 6 hex digits of zeros encrypted under it."""
    return _des(key, bytes(8)).hex().upper()[:6]


def retail_mac(key: bytes, data: bytes) -> str:
    """ISO 9797-1 MAC algorithm 3 with padding method 1 (ANSI X9.19, the retail MAC): single
    DES CBC under the key's left half, the last block then decrypted under the right half and
    encrypted again under the left; 16 hex digits."""
    if len(key) != 16:
        raise ValueError("the retail MAC needs a double-length key")
    left, right = key[:8], key[8:]
    padded = data + bytes(-len(data) % 8) if data else bytes(8)
    # The chaining in one call of the cipher (CBC, a zero IV): the last block is the state.
    chain = Cipher(TripleDES(left * 3), modes.CBC(bytes(8))).encryptor()
    state = (chain.update(padded) + chain.finalize())[-8:]
    state = _des(left, _des(right, state, decrypt=True))
    return state.hex().upper()


def clear_pin_block(block: bytes, pan: str) -> str | None:
    """Return the PIN of a clear ISO 9564 format 0 block for ``pan``, or None if malformed."""
    if len(pan) < 13 or not pan.isdigit():
        return None
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    field = bytes(a ^ b for a, b in zip(block, pan_field, strict=True)).hex().upper()
    length = int(field[1], 16)
    if field[0] != "0" or not 4 <= length <= 12:
        return None
    pin, filler = field[2 : 2 + length], field[2 + length :]
    if not pin.isdigit() or filler != "F" * len(filler):
        return None
    return pin


def pin_block_format0(pin: str, pan: str) -> bytes:
    """Return the clear ISO 9564 format 0 block of ``pin`` for ``pan`` (what a terminal's
    PIN pad builds before encrypting it).

    Raises:
        ValueError: a PIN that is not 4 to 12 digits, or a card number that is not digits.
    """
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a PIN is 4 to 12 digits")
    if not (pan.isascii() and pan.isdigit() and len(pan) >= 13):
        raise ValueError("a card number is at least 13 digits")
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


def encrypted_pin_block(key: bytes, pin: str, pan: str) -> str:
    """Return ``pin``'s format 0 block for ``pan`` encrypted under a terminal's PIN key, as
    the 16 hex digits of ISO 8583 field 52 (the terminal side; the server only decrypts)."""
    return _des(key, pin_block_format0(pin, pan)).hex().upper()
