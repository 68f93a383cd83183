"""The demo bank's security data: every named identity's password and TOTP secret, and one
bound phone per named customer user.

The secrets are fixed and printed in the README, so that a person can add them to an
authenticator app and a script can compute codes. A second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import repository as cau_repository
from channelhub.cau import service as cau
from channelhub.demo.catalog import DEMO_CUSTOMERS, STAFF, demo_password
from channelhub.security import repository as security_repository
from channelhub.security.partners import PARTNER_SCOPES, register_app
from channelhub.security.service import SecurityCenter
from channelhub.security.terminals import register_terminal, terminal

__all__ = [
    "DEMO_CONSENT_ID",
    "DEMO_PARTICIPANT_BIC",
    "DEMO_PARTICIPANT_ID",
    "DEMO_PARTICIPANT_SECRET",
    "DEMO_PARTNER_ID",
    "DEMO_PARTNER_SECRET",
    "DEMO_TOTP_SECRETS",
    "demo_device",
    "seed_identities",
    "seed_participant",
    "seed_partner",
    "seed_terminals",
]

#: The demo's ATM and POS terminal and their keys (double-length triple DES, hex), which
#: the README prints so that a terminal simulator can load them.
DEMO_TERMINALS = (
    ("ATM00001", "atm", "Head Office lobby, Shanghai", "0101", None),
    ("POS00001", "pos", "Coffee shop, Pudong", None, "DEMOMERCHANT001"),
)
DEMO_PIN_KEY = "0123456789ABCDEFFEDCBA9876543210"
DEMO_MAC_KEY = "89ABCDEF0123456776543210FEDCBA98"

#: The demo partner app and the consent alice gave it for her CNY current account.
DEMO_PARTNER_ID = "fintech-demo"
DEMO_PARTNER_SECRET = "fintech-demo-secret-2026"  # noqa: S105  (the README prints it)
DEMO_CONSENT_ID = uuid.UUID("0193a1de-0000-7000-8000-00000000c0de")

#: The demo's interbank participant: another bank that sends credit transfers (pacs.008) to
#: the demo bank, as the app holding the scope ``interbank:<its BIC>`` (docs/interbank.md).
DEMO_PARTICIPANT_ID = "democnsh-interbank"
DEMO_PARTICIPANT_SECRET = "democnsh-interbank-secret-2026"  # noqa: S105  (the docs print it)
DEMO_PARTICIPANT_BIC = "DEMOCNSHXXX"

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


async def seed_partner(
    sessions: async_sessionmaker[AsyncSession], security: SecurityCenter, *, now: dt.datetime
) -> bool:
    """Register the demo partner app (calls from this machine only) and alice's consent for
    her CNY current account (balances and statements, 90 days); False if already there."""
    async with sessions() as session:
        if await security_repository.partner_app(session, DEMO_PARTNER_ID) is not None:
            return False
    await register_app(
        security,
        client_id=DEMO_PARTNER_ID,
        name="Fintech Demo (budgeting app)",
        scopes=sorted(PARTNER_SCOPES),
        networks=["127.0.0.0/8", "::1/128"],
        secret=DEMO_PARTNER_SECRET,
    )
    async with sessions() as session, session.begin():
        alice = await cau.login_identity(session, "customer", "alice")
        if alice is None or alice.customer_id is None:
            raise LookupError("the demo customer alice was not seeded")
        accounts = await cau_repository.accounts_of_customer(session, alice.customer_id)
        current = [
            a.number for a in accounts if a.currency == "CNY" and a.product_type == "current"
        ]
        await security_repository.insert_consent(
            session,
            {
                "id": DEMO_CONSENT_ID,
                "client_id": DEMO_PARTNER_ID,
                "customer_id": alice.customer_id,
                "granted_by": alice.id,
                "accounts": current[:1],
                "scopes": sorted(PARTNER_SCOPES),
                "granted_at": now,
                "expires_at": now + dt.timedelta(days=90),
                "revoked_at": None,
            },
        )
    return True


async def seed_participant(
    sessions: async_sessionmaker[AsyncSession], security: SecurityCenter
) -> bool:
    """Register the demo's interbank participant bank (calls from this machine only); False
    if already there."""
    async with sessions() as session:
        if await security_repository.partner_app(session, DEMO_PARTICIPANT_ID) is not None:
            return False
    await register_app(
        security,
        client_id=DEMO_PARTICIPANT_ID,
        name="Demo Commercial Bank, Shanghai (interbank participant)",
        scopes=[f"interbank:{DEMO_PARTICIPANT_BIC}"],
        networks=["127.0.0.0/8", "::1/128"],
        secret=DEMO_PARTICIPANT_SECRET,
    )
    return True


async def seed_terminals(
    sessions: async_sessionmaker[AsyncSession], security: SecurityCenter
) -> int:
    """Register the demo terminals with the demo keys; return how many were new."""
    added = 0
    for terminal_id, kind, location, branch, merchant in DEMO_TERMINALS:
        async with sessions() as session:
            if await terminal(session, terminal_id) is not None:
                continue
        await register_terminal(
            security,
            terminal_id=terminal_id,
            kind=kind,
            location=location,
            branch_code=branch,
            merchant_id=merchant,
            pin_key=bytes.fromhex(DEMO_PIN_KEY),
            mac_key=bytes.fromhex(DEMO_MAC_KEY),
        )
        added += 1
    return added
