"""Business keys with check digits, and how they are shown masked. Pure functions."""

from __future__ import annotations

__all__ = [
    "account_number",
    "customer_number",
    "luhn_check_digit",
    "luhn_valid",
    "mask_email",
    "mask_id_number",
    "mask_pan",
    "mask_phone",
    "mod97_valid",
    "pan",
]

#: The bank's card issuer identification number (the first six digits of its cards).
CARD_BIN = "623456"


def luhn_check_digit(digits: str) -> str:
    """Return the Luhn (ISO/IEC 7812) check digit that completes ``digits``."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled: these sit at odd places once the check digit is added
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """Tell whether ``number`` is all digits and ends with its Luhn check digit."""
    return len(number) >= 2 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def customer_number(serial: int) -> str:
    """Return the customer number for ``serial``: nine digits and a Luhn check digit."""
    body = f"{serial:09d}"
    return body + luhn_check_digit(body)


def account_number(branch: str, serial: int) -> str:
    """Return an account number: branch, ten-digit serial, and two ISO 7064 MOD 97-10 check
    digits (the scheme IBANs use), so any one wrong or two swapped digits are caught."""
    body = f"{branch}{serial:010d}"
    check = 98 - (int(body) * 100) % 97
    return f"{body}{check:02d}"


def mod97_valid(number: str) -> bool:
    """Tell whether ``number`` is all digits and passes the ISO 7064 MOD 97-10 check."""
    return len(number) > 2 and number.isdigit() and int(number) % 97 == 1


def pan(serial: int, bin_: str = CARD_BIN) -> str:
    """Return a 16-digit card number: issuer BIN, nine-digit serial, Luhn check digit."""
    body = f"{bin_}{serial:09d}"
    return body + luhn_check_digit(body)


def mask_pan(number: str) -> str:
    """Show the first six and last four digits only, as PCI DSS allows."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_id_number(number: str) -> str:
    """Show only the first and last few characters of an identity document number."""
    if len(number) <= 4:
        return "*" * len(number)
    keep = 3 if len(number) >= 12 else 1
    return number[:keep] + "*" * (len(number) - keep - 4) + number[-4:]


def mask_phone(phone: str | None) -> str | None:
    """Show a phone number's last four digits."""
    if not phone:
        return phone
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


def mask_email(email: str | None) -> str | None:
    """Show an e-mail address's first letter and its domain."""
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"
