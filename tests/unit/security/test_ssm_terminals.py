"""The security module's payment functions: the ANSI X9.19 retail MAC and ISO 9564 format 0
PIN blocks, against published vectors and an independent encryption."""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from channelhub.security.ssm import (
    SealError,
    SoftwareSecurityModule,
    check_value,
    clear_pin_block,
    retail_mac,
)

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN = "6234560000000016"


def test_retail_mac_published_vectors() -> None:
    # ANSI X9.19's example: "Now is the time for all " under 0123456789ABCDEF FEDCBA9876543210.
    assert retail_mac(KEY, b"Now is the time for all ") == "A1C72E74EA3FA9B6"
    # With both halves equal it is FIPS 113's DES CBC-MAC: F1D30F68 49312CA4.
    same = bytes.fromhex("0123456789ABCDEF") * 2
    assert retail_mac(same, b"7654321 Now is the time for ") == "F1D30F6849312CA4"


def test_retail_mac_pads_with_zeros_and_covers_every_byte() -> None:
    assert retail_mac(KEY, b"abc") == retail_mac(KEY, b"abc\x00\x00\x00\x00\x00")
    assert retail_mac(KEY, b"abc") != retail_mac(KEY, b"abd")
    with pytest.raises(ValueError, match="double-length"):
        retail_mac(KEY[:8], b"abc")


def test_check_values() -> None:
    # The check value of a key is zeros encrypted under it; with K1 = K2 that is single DES.
    assert check_value(bytes.fromhex("0123456789ABCDEF") * 2) == "D5D44F"


def _encrypted_block(key: bytes, pin: str, pan: str) -> str:
    field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    clear = bytes(a ^ b for a, b in zip(field, pan_field, strict=True))
    encryptor = Cipher(TripleDES(key + key[:8]), modes.ECB()).encryptor()  # noqa: S305
    return (encryptor.update(clear) + encryptor.finalize()).hex().upper()


@given(st.text(alphabet="0123456789", min_size=4, max_size=12))
def test_pin_blocks_round_trip(pin: str) -> None:
    ssm = SoftwareSecurityModule(b"m" * 32)
    sealed = ssm.seal(KEY, "terminal:ATM00001:pin")
    block = _encrypted_block(KEY, pin, PAN)
    seen: list[str] = []

    def check(candidate: str) -> bool:
        seen.append(candidate)
        return candidate == pin

    assert ssm.pin_matches(sealed, "terminal:ATM00001:pin", block, PAN, check)
    assert seen == [pin]
    # The same block for another card decodes to garbage or another PIN.
    assert not ssm.pin_matches(
        sealed, "terminal:ATM00001:pin", block, "6234560000000024", lambda p: p == pin
    )


def test_malformed_pin_blocks_are_wrong_pins() -> None:
    ssm = SoftwareSecurityModule(b"m" * 32)
    sealed = ssm.seal(KEY, "pin")
    for block in ("", "zz" * 8, "00" * 7, "00" * 9):
        assert not ssm.pin_matches(sealed, "pin", block, PAN, lambda _: True)
    assert clear_pin_block(bytes.fromhex("1412 34FF FFFF FFFF".replace(" ", "")), PAN) is None
    assert clear_pin_block(bytes(8), "123") is None
    with pytest.raises(SealError):  # a key sealed for another terminal does not open
        ssm.pin_matches(sealed, "terminal:OTHER:pin", _encrypted_block(KEY, "1234", PAN), PAN, bool)


def test_mac_matches_in_either_case() -> None:
    ssm = SoftwareSecurityModule(b"m" * 32)
    sealed = ssm.seal(KEY, "mac")
    assert ssm.mac(sealed, "mac", b"Now is the time for all ") == "A1C72E74EA3FA9B6"
    assert ssm.mac_matches(sealed, "mac", b"Now is the time for all ", "a1c72e74ea3fa9b6")
    assert not ssm.mac_matches(sealed, "mac", b"Now is the time for all!", "A1C72E74EA3FA9B6")
