"""The demo bank's security data: every named identity's password and TOTP secret, and one
bound phone per named customer user.

The secrets are fixed and printed in the README, so that a person can add them to an
authenticator app and a script can compute codes. A second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import service as cau
from channelhub.demo.catalog import DEMO_CUSTOMERS, STAFF, demo_password
from channelhub.security import repository as security_repository
from channelhub.security.service import SecurityCenter

__all__ = ["DEMO_TOTP_SECRETS", "demo_device", "seed_identities"]

#: username -> base32 TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s).
DEMO_TOTP_SECRETS = {
    "alice": "ALICEDEMOTOTPKEY",
    "bob": "BOBDEMOTOTPKEYXX",
    "acme": "ACMEDEMOTOTPKEYX",
    "acme.op1": "ACMEOPONEDEMOKEY",
    "acme.op2": "ACMEOPTWODEMOKEY",
    "teller1": "TELLERONEDEMOKEY",
    "teller2": "TELLERTWODEMOKEY",
    "super1": "SUPERONEDEMOKEYX",
    "operator1": "OPERATORDEMOKEYX",
    "admin": "ADMINDEMOTOTPKEY",
    "auditor1": "AUDITORDEMOKEYXX",
}


def demo_device(username: str) -> str:
    """Return the device id a named demo customer user has already bound: ``<username>-phone``."""
    return f"{username}-phone"


def _identities() -> list[tuple[str, str]]:
    users = [("customer", c.username) for c in DEMO_CUSTOMERS]
    users += [("customer", op) for c in DEMO_CUSTOMERS for op in c.operators]
    return users + [("staff", username) for username, *_ in STAFF]


async def seed_identities(
    sessions: async_sessionmaker[AsyncSession],
    security: SecurityCenter,
    *,
    now: dt.datetime,
    advance: Callable[[int], None] = lambda _: None,
) -> int:
    """Give every named demo identity its password, TOTP and (customers) a bound phone;
    return how many were new."""
    added = 0
    for kind, username in _identities():
        async with sessions() as session, session.begin():
            added += await _identity(session, security, kind, username, now)
        advance(1)
    return added


async def _identity(
    session: AsyncSession, security: SecurityCenter, kind: str, username: str, now: dt.datetime
) -> int:
    identity = await cau.login_identity(session, kind, username)
    if identity is None:
        raise LookupError(f"the demo identity {username} was not seeded")
    if await security_repository.credential(session, kind, identity.id) is not None:
        return 0
    await security.set_password(
        session,
        kind,
        identity.id,
        username,
        demo_password(username),
        enforce_rules=False,
        now=now,
    )
    await security.set_totp_secret(
        session, kind, identity.id, DEMO_TOTP_SECRETS[username], confirmed=True, now=now
    )
    if kind == "customer":
        await cau.bind_device(session, identity.id, demo_device(username), now=now)
    return 1
