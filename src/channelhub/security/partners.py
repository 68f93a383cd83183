"""Partner apps on the open API: registration, the OAuth 2 client-credentials grant, signed
requests, and the customer's consent that decides what an app may see.

A partner call is accepted only when every check holds: a valid partner access token, the
same client in ``X-Client-Id``, an address in the app's allow-list, a timestamp within five
minutes, a signature made with the app's secret, a nonce never used before, and, for a
customer's data, a consent in force that covers the accounts and the scopes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.kernel.model import AuthLevel, Principal, PrincipalKind
from channelhub.kit.clock import utc_now
from channelhub.kit.logging import get_logger
from channelhub.security import repository, signing
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import (
    AddressNotAllowed,
    ConsentInvalid,
    InvalidCredentials,
    RequestExpired,
    RequestReplayed,
    SignatureInvalid,
    TokenInvalid,
)
from channelhub.security.service import SecurityCenter

__all__ = [
    "INTERBANK_SCOPE",
    "PARTNER_SCOPES",
    "SignedRequest",
    "address_allowed",
    "client_token",
    "consent_view",
    "partner_principal",
    "register_app",
]

log = get_logger(__name__)

#: What a partner app may be granted, and a customer may consent to.
PARTNER_SCOPES = frozenset({"accounts:read", "statements:read"})
#: An interbank participant's scope, ``interbank:<BIC>``: the app may send ISO 20022 messages
#: as that bank (docs/interbank.md). Never a customer's to consent to.
INTERBANK_SCOPE = re.compile(r"interbank:[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_SECRET_PURPOSE = "partner-secret"  # noqa: S105  (what a sealed value is for, not a secret)


def _purpose(client_id: str) -> str:
    return f"{_SECRET_PURPOSE}:{client_id}"


def address_allowed(address: str | None, networks: Sequence[str]) -> bool:
    """Tell whether ``address`` is inside one of the CIDR blocks."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


async def register_app(
    center: SecurityCenter,
    *,
    client_id: str,
    name: str,
    scopes: Sequence[str],
    networks: Sequence[str],
    secret: str | None = None,
) -> str:
    """Register a partner app; return its client secret, to be shown once.

    Raises:
        ValueError: an unknown scope, a malformed network, a short secret.
    """
    unknown = {s for s in scopes if s not in PARTNER_SCOPES and not INTERBANK_SCOPE.fullmatch(s)}
    if unknown:
        raise ValueError(f"unknown scope {', '.join(sorted(unknown))}")
    for network in networks:
        ipaddress.ip_network(network, strict=False)
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise ValueError("a client secret needs at least 16 characters")
    now = utc_now()
    async with center.sessions() as session, session.begin():
        await repository.insert_partner_app(
            session,
            {
                "client_id": client_id,
                "name": name,
                "secret_sealed": center.ssm.seal(secret.encode(), _purpose(client_id)),
                "scopes": sorted(scopes),
                "allowed_networks": list(networks),
                "status": "active",
                "created_at": now,
            },
        )
        await record_audit(
            session,
            action="partner.register",
            outcome="succeeded",
            actor_kind="system",
            actor_id=None,
            details={"client_id": client_id, "scopes": sorted(scopes)},
            now=now,
        )
    return secret


def _secret(center: SecurityCenter, app: Any) -> str:
    return center.ssm.open(app.secret_sealed, _purpose(app.client_id)).decode()


async def client_token(
    center: SecurityCenter,
    *,
    client_id: str,
    client_secret: str,
    scope: str | None,
    source_address: str | None,
) -> dict[str, Any]:
    """The OAuth 2 client-credentials grant: an access token for the app's scopes.

    Raises:
        InvalidCredentials: unknown client, wrong secret, suspended app (one answer).
        AddressNotAllowed: the call comes from outside the app's allow-list.
        ValueError: a scope the app was not given (``invalid_scope``).
    """
    now = utc_now()
    async with center.sessions() as session, session.begin():
        app = await repository.partner_app(session, client_id[:64])
        known = app is not None and app.status == "active"
        # The secret is compared even for an unknown client, against a random one.
        expected = _secret(center, app) if known else secrets.token_urlsafe(32)
        good = hmac.compare_digest(expected.encode(), client_secret.encode()) and known
        outcome = "succeeded"
        if not good:
            outcome = "failed"
        elif app is not None and not address_allowed(source_address, app.allowed_networks):
            outcome = "address_not_allowed"
        await record_audit(
            session,
            action="partner.token",
            outcome=outcome,
            actor_kind="partner",
            actor_id=client_id[:64] if known else None,
            channel="partner",
            source_address=source_address,
            now=now,
        )
    if not good or app is None:
        raise InvalidCredentials("the client id or secret is wrong")
    if outcome == "address_not_allowed":
        raise AddressNotAllowed("calls from this address are not allowed")
    granted = set(app.scopes)
    wanted = set(scope.split()) if scope else granted
    if not wanted <= granted:
        raise ValueError("a requested scope is not granted to this app")
    token = center.issue_partner_token(client_id=app.client_id, scopes=frozenset(wanted), now=now)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": center.config.access_token_seconds,
        "scope": " ".join(sorted(wanted)),
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a partner request's signature covers, and its signature headers."""

    method: str
    path: str
    query: str
    body: bytes
    client_id: str | None
    timestamp: str | None
    nonce: str | None
    signature: str | None
    source_address: str | None
    consent_id: str | None


async def partner_principal(
    center: SecurityCenter, token: str, request: SignedRequest
) -> Principal:
    """Check every part of a partner call; return the principal to run it as: the app alone,
    or the app acting for the customer whose consent the request names.

    Raises:
        TokenInvalid, SignatureInvalid, RequestExpired, RequestReplayed, AddressNotAllowed,
        ConsentInvalid: the first check that fails.
    """
    app_principal = await center.authenticate(token)
    if app_principal.kind is not PrincipalKind.PARTNER:
        raise TokenInvalid("this is not a partner access token")
    if request.client_id is None or request.client_id != app_principal.id:
        raise SignatureInvalid("X-Client-Id must name the app the token was issued to")
    if not (request.timestamp and request.nonce and request.signature):
        raise SignatureInvalid("send X-Timestamp, X-Nonce and X-Signature")
    if len(request.nonce) > 128 or not request.nonce.isascii() or not request.nonce.isprintable():
        raise SignatureInvalid("X-Nonce must be 1 to 128 printable ASCII characters")
    if not signing.timestamp_fresh(request.timestamp, time.time()):
        raise RequestExpired("X-Timestamp must be within five minutes of the server's time")
    now = utc_now()
    async with center.sessions() as session, session.begin():
        app = await repository.partner_app(session, request.client_id)
        if app is None or app.status != "active":
            raise TokenInvalid("the app is not active")
        if not address_allowed(request.source_address, app.allowed_networks):
            raise AddressNotAllowed("calls from this address are not allowed")
        if not signing.verify(
            _secret(center, app),
            request.signature,
            request.method,
            request.path,
            request.query,
            request.timestamp,
            request.nonce,
            request.body,
        ):
            raise SignatureInvalid("the signature does not match the request")
        # Only a correctly signed request spends its nonce: nobody else can burn one. It is
        # spent whatever happens next, so a refused request cannot be replayed either.
        fresh = await repository.use_nonce(session, app.client_id, request.nonce, now)
    if not fresh:
        raise RequestReplayed("this nonce was used before")
    async with center.sessions() as session:
        consent = await _consent(session, app.client_id, request.consent_id, now)
    attributes = {"channel": "partner", "client_id": app.client_id}
    if consent is None:
        return Principal(
            kind=PrincipalKind.PARTNER,
            id=app.client_id,
            auth_level=AuthLevel.NONE,
            scopes=app_principal.scopes,
            attributes=attributes,
        )
    attributes.update(
        customer_id=str(consent.customer_id),
        consent_id=str(consent.id),
        consent_accounts=",".join(consent.accounts),
    )
    return Principal(
        kind=PrincipalKind.PARTNER,
        id=app.client_id,
        # The customer logged in to grant the consent; the app acts on that, within it.
        auth_level=AuthLevel.PASSWORD,
        scopes=app_principal.scopes & frozenset(consent.scopes),
        attributes=attributes,
    )


async def _consent(
    session: AsyncSession, client_id: str, consent_id: str | None, now: dt.datetime
) -> Any | None:
    if consent_id is None:
        return None
    try:
        key = uuid.UUID(consent_id)
    except ValueError:
        raise ConsentInvalid("X-Consent-Id names no consent") from None
    row = await repository.consent(session, key)
    if row is None or row.client_id != client_id or row.revoked_at is not None:
        raise ConsentInvalid("no consent in force for this app has this id")
    if row.expires_at <= now:
        raise ConsentInvalid("the consent has expired")
    return row


def consent_view(row: Any, now: dt.datetime) -> dict[str, Any]:
    """Return a consent as the customer sees it."""
    status = "revoked" if row.revoked_at else "expired" if row.expires_at <= now else "active"
    return {
        "consent": str(row.id),
        "client_id": row.client_id,
        "accounts": list(row.accounts),
        "scopes": list(row.scopes),
        "granted_at": row.granted_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "status": status,
    }
