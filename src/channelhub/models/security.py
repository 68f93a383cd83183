"""The security center's tables: credentials, login throttles, challenges, refresh tokens,
revoked sessions, token signing keys and the tamper-evident audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from channelhub.models.base import Base

__all__ = [
    "SUBJECT_KINDS",
    "Approval",
    "AuditRecord",
    "AuthChallenge",
    "Consent",
    "Credential",
    "LoginThrottle",
    "PartnerApp",
    "PartnerNonce",
    "RefreshToken",
    "RevokedSession",
    "SigningKey",
    "Terminal",
]

#: Who can hold a credential: a customer user or a staff member.
SUBJECT_KINDS = ("customer", "staff")


class Credential(Base):
    """What proves a login identity: its password hash and its second factor.

    The TOTP secret is sealed by the software security module (the server must read it back
    to check a code); the password only ever as an argon2id hash.
    """

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject_id"),
        CheckConstraint("subject_kind IN ('customer', 'staff')", name="subject_kind_known"),
        CheckConstraint("failed_attempts >= 0", name="failed_attempts_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    #: The customer user's or the staff member's id.
    subject_id: Mapped[uuid.UUID]
    password_hash: Mapped[str] = mapped_column(String(256))
    password_changed_at: Mapped[dt.datetime]
    #: Set when staff reset the password: the next login must change it.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    totp_sealed: Mapped[str | None] = mapped_column(String(256))
    #: When the second factor was confirmed; a pending enrolment has a secret but no date.
    totp_confirmed_at: Mapped[dt.datetime | None]
    #: The last TOTP time step accepted: each code is good once, and never an older one.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class LoginThrottle(Base):
    """Failed logins per username, known or not: an unknown name locks exactly like a real
    one, so the lockout tells an attacker nothing about which names exist."""

    __tablename__ = "login_throttles"

    #: SHA-256 of the kind and the lower-cased username: what was typed is never stored, since
    #: people type passwords into the username field.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    first_failure_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class AuthChallenge(Base):
    """A pending second factor: after a password from a new device (``login``), or for one
    transaction that needs a fresh one (``step_up``, bound to what it authorizes)."""

    __tablename__ = "auth_challenges"
    __table_args__ = (
        CheckConstraint("purpose IN ('login', 'step_up')", name="purpose_known"),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
        Index("ix_auth_challenges_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: SHA-256 of the token handed to the client; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(128))
    #: What the second factor authorizes (service, amount, beneficiary for a step-up).
    binding: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    #: SHA-256 of the challenge and the code that answered it: a retry of the same request
    #: with the same code passes again (the journal then replays it), any other does not.
    proof_digest: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    """One refresh token of a login session (its family). Tokens rotate: each is good once,
    and presenting a spent one again revokes the whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The login session; access tokens carry it as ``sid``.
    family_id: Mapped[uuid.UUID]
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(128))
    auth_level: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class RevokedSession(Base):
    """A login session ended early (logout, refresh-token reuse, password change). Every node
    keeps these in memory and refuses the session's access tokens without asking the
    database on each request."""

    __tablename__ = "revoked_sessions"
    __table_args__ = (Index("ix_revoked_sessions_revoked_at", "revoked_at"),)

    family_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[dt.datetime]
    #: After this, every access token of the session has expired anyway.
    forget_after: Mapped[dt.datetime]


class SigningKey(Base):
    """A key access tokens are signed with. The private half is sealed under the master key;
    the public half is published at ``/.well-known/jwks.json``."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_sealed: Mapped[str] = mapped_column(String(1024))
    public_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    #: Once retired a key signs nothing; it verifies until its last token has expired.
    retired_at: Mapped[dt.datetime | None]


class AuditRecord(Base):
    """One security event. Append-only, and each record carries the hash of the one before it,
    so that removing or editing a record breaks the chain (``channelhub audit verify``)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor", "actor_kind", "actor_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    at: Mapped[dt.datetime]
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    source_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Approval(Base):
    """A sensitive operation one staff member asked for and a second, different one must
    approve (four-eyes) before it runs; both identities stay on the record."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'expired')", name="status_known"
        ),
        CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="four_eyes"),
        Index("ix_approvals_status_requested_at", "status", "requested_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    #: What the operation acts on (never a secret); what the approver is shown.
    payload: Mapped[dict[str, Any]]
    approve_permission: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[uuid.UUID]
    requested_by_name: Mapped[str] = mapped_column(String(64))
    branch_code: Mapped[str | None] = mapped_column(String(8))
    requested_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[uuid.UUID | None]
    decided_by_name: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))


class PartnerApp(Base):
    """A partner's application on the open API: client credentials, scopes, addresses."""

    __tablename__ = "partner_apps"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status_known"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Sealed, not hashed: the server computes each request's HMAC with it.
    secret_sealed: Mapped[str] = mapped_column(String(512))
    scopes: Mapped[list[Any]]
    #: CIDR blocks calls may come from; empty refuses every address.
    allowed_networks: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]


class PartnerNonce(Base):
    """A request nonce a partner used; the same nonce again is a replay."""

    __tablename__ = "partner_nonces"
    __table_args__ = (Index("ix_partner_nonces_seen_at", "seen_at"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[dt.datetime]


class Consent(Base):
    """A customer's grant to a partner app: these accounts, these scopes, until then."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_customer_id", "customer_id"),
        CheckConstraint("expires_at > granted_at", name="expires_after_grant"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID]
    #: The customer user who granted it.
    granted_by: Mapped[uuid.UUID]
    accounts: Mapped[list[Any]]
    scopes: Mapped[list[Any]]
    granted_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class Terminal(Base):
    """A registered ATM or POS terminal and its keys, sealed by the security module."""

    __tablename__ = "terminals"
    __table_args__ = (
        CheckConstraint("kind IN ('atm', 'pos')", name="kind_known"),
        CheckConstraint("status IN ('active', 'suspended')", name="status_known"),
    )

    #: ISO 8583 field 41 (card acceptor terminal identification), 8 characters.
    terminal_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: Field 42 (card acceptor identification), up to 15 characters.
    merchant_id: Mapped[str | None] = mapped_column(String(15))
    branch_code: Mapped[str | None] = mapped_column(String(8))
    location: Mapped[str] = mapped_column(String(200))
    pin_key_sealed: Mapped[str] = mapped_column(String(256))
    pin_key_check: Mapped[str] = mapped_column(String(6))
    mac_key_sealed: Mapped[str] = mapped_column(String(256))
    mac_key_check: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
