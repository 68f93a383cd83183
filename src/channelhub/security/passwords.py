"""Password hashing with argon2id, and the rules a new password must meet.

Hashing is deliberately slow (tens of milliseconds of CPU): callers run it in a worker thread
so the event loop keeps serving while a login is checked.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter

__all__ = ["MAX_PASSWORD_LENGTH", "Passwords", "password_problem"]

MIN_PASSWORD_LENGTH = 10
#: argon2 takes any length, but a megabyte "password" is a denial-of-service attempt.
MAX_PASSWORD_LENGTH = 128

VERIFICATIONS = Counter(
    "channelhub_password_verifications",
    "argon2id password verifications run, whatever their outcome (unknown users included)",
)


class Passwords:
    """argon2id at the configured cost."""

    __slots__ = ("_dummy", "_hasher")

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None

    def warm(self) -> None:
        """Make the dummy hash now, so the first unknown username is not slower (or faster)."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("channelhub: no such user")

    def hash(self, password: str) -> str:
        """Return the argon2id hash of ``password`` (PHC string, salt and cost included)."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Tell whether ``password`` matches ``stored``; with no hash, spend the same time and
        say no."""
        VERIFICATIONS.inc()
        if stored is None:
            # Checked when the username is unknown, so that answering takes as long as for a
            # wrong password: timing does not tell which usernames exist.
            self.warm()
        try:
            return self._hasher.verify(stored or self._dummy or "", password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Tell whether ``stored`` was hashed at another cost than the configured one."""
        return self._hasher.check_needs_rehash(stored)


def password_problem(password: str, *, username: str) -> str | None:
    """Return why ``password`` may not be used, or None if it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"a password has at most {MAX_PASSWORD_LENGTH} characters"
    if username and username.lower() in password.lower():
        return "a password may not contain the username"
    if len(set(password)) < 4:
        return "a password needs at least 4 different characters"
    return None
