"""Every SQL statement of the security center."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.models import (
    Approval,
    AuditRecord,
    AuthChallenge,
    Consent,
    Credential,
    LoginThrottle,
    PartnerApp,
    PartnerNonce,
    RefreshToken,
    RevokedSession,
    SigningKey,
    Terminal,
)
from channelhub.security.signing import MAX_SKEW_SECONDS

__all__ = [
    "accept_totp_step",
    "append_audit",
    "approval",
    "audit_records",
    "bump_challenge",
    "challenge_for_update",
    "clear_failures",
    "consent",
    "consents_of_customer",
    "credential",
    "decide_approval",
    "forget_revocations",
    "insert_approval",
    "insert_challenge",
    "insert_consent",
    "insert_credential",
    "insert_partner_app",
    "insert_refresh",
    "insert_signing_key",
    "insert_terminal",
    "last_audit",
    "lock_audit_chain",
    "partner_app",
    "pending_approvals",
    "prune_nonces",
    "record_failure",
    "refresh_for_update",
    "retire_signing_keys",
    "revoke_consent",
    "revoke_family",
    "revoke_subject_sessions",
    "revoked_since",
    "set_password",
    "set_totp",
    "signing_keys",
    "spend_challenge",
    "spend_refresh",
    "terminal",
    "throttle",
    "use_nonce",
]

_credentials = cast(Table, Credential.__table__)
_throttles = cast(Table, LoginThrottle.__table__)
_challenges = cast(Table, AuthChallenge.__table__)
_refresh = cast(Table, RefreshToken.__table__)
_revoked = cast(Table, RevokedSession.__table__)
_keys = cast(Table, SigningKey.__table__)
_audit = cast(Table, AuditRecord.__table__)
_approvals = cast(Table, Approval.__table__)
_apps = cast(Table, PartnerApp.__table__)
_nonces = cast(Table, PartnerNonce.__table__)
_consents = cast(Table, Consent.__table__)
_terminals = cast(Table, Terminal.__table__)

# An arbitrary constant: the advisory lock that serializes appends to the audit chain.
_AUDIT_LOCK = 0x63686175  # "chau"


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# --- credentials ---


async def credential(
    session: AsyncSession, subject_kind: str, subject_id: uuid.UUID, *, for_update: bool = False
) -> Any | None:
    """Return the credential of a customer user or staff member."""
    query = select(_credentials).where(
        _credentials.c.subject_kind == subject_kind, _credentials.c.subject_id == subject_id
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def insert_credential(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a new credential."""
    await session.execute(insert(_credentials), row)


async def set_password(
    session: AsyncSession,
    credential_id: uuid.UUID,
    password_hash: str,
    *,
    must_change: bool,
    now: dt.datetime,
) -> None:
    """Replace a password hash."""
    await session.execute(
        update(_credentials)
        .where(_credentials.c.id == credential_id)
        .values(
            password_hash=password_hash,
            password_changed_at=now,
            must_change_password=must_change,
            updated_at=now,
        )
    )


async def set_totp(
    session: AsyncSession,
    credential_id: uuid.UUID,
    sealed: str | None,
    *,
    confirmed_at: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Replace the TOTP secret (pending until ``confirmed_at`` is set)."""
    await session.execute(
        update(_credentials)
        .where(_credentials.c.id == credential_id)
        .values(totp_sealed=sealed, totp_confirmed_at=confirmed_at, updated_at=now)
    )


async def accept_totp_step(session: AsyncSession, credential_id: uuid.UUID, step: int) -> bool:
    """Record ``step`` as the last TOTP step used, if it is later than the one recorded.

    One conditional UPDATE: of two requests presenting the same code at once, one wins.
    """
    c = _credentials.c
    result = await session.execute(
        update(_credentials)
        .where(c.id == credential_id, (c.totp_last_step.is_(None)) | (c.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return bool(cast(Any, result).rowcount)


# --- login throttles ---


async def throttle(session: AsyncSession, key: str) -> Any | None:
    """Return the failed-login record of a username key, locked for update."""
    query = select(_throttles).where(_throttles.c.key == key).with_for_update()
    return (await session.execute(query)).first()


async def record_failure(
    session: AsyncSession,
    key: str,
    *,
    now: dt.datetime,
    window_start: dt.datetime,
    limit: int,
    locked_until: dt.datetime,
) -> tuple[int, dt.datetime | None]:
    """Count one failed login for ``key`` and lock it once ``limit`` failures fall within the
    window; return the failures counted and the lock. Failures older than ``window_start``
    start the count again."""
    row = await throttle(session, key)
    if row is None or row.first_failure_at < window_start:
        failures, first = 1, now
    else:
        failures, first = row.failures + 1, row.first_failure_at
    lock = locked_until if failures >= limit else None
    values = {"key": key, "failures": failures, "first_failure_at": first, "locked_until": lock}
    if _dialect(session) == "postgresql":
        upsert: Any = postgresql.insert(_throttles)
    else:
        upsert = sqlite.insert(_throttles)
    await session.execute(
        upsert.values(values).on_conflict_do_update(
            index_elements=["key"],
            set_={k: v for k, v in values.items() if k != "key"},
        )
    )
    return failures, lock


async def clear_failures(session: AsyncSession, key: str) -> None:
    """Forget the failed logins of ``key`` (after a successful login)."""
    await session.execute(delete(_throttles).where(_throttles.c.key == key))


# --- second-factor challenges ---


async def insert_challenge(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a new challenge."""
    await session.execute(insert(_challenges), row)


async def challenge_for_update(session: AsyncSession, token_hash: str) -> Any | None:
    """Return the challenge a token hash names, locked for update."""
    query = select(_challenges).where(_challenges.c.token_hash == token_hash).with_for_update()
    return (await session.execute(query)).first()


async def bump_challenge(session: AsyncSession, challenge_id: uuid.UUID) -> None:
    """Count one wrong code against a challenge."""
    c = _challenges.c
    await session.execute(
        update(_challenges).where(c.id == challenge_id).values(attempts=c.attempts + 1)
    )


async def spend_challenge(
    session: AsyncSession, challenge_id: uuid.UUID, now: dt.datetime, proof: str | None = None
) -> bool:
    """Mark a challenge used (with the digest of what answered it), if nobody did first."""
    c = _challenges.c
    result = await session.execute(
        update(_challenges)
        .where(c.id == challenge_id, c.used_at.is_(None))
        .values(used_at=now, proof_digest=proof)
    )
    return bool(cast(Any, result).rowcount)


# --- refresh tokens and revoked sessions ---


async def insert_refresh(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a new refresh token (its hash)."""
    await session.execute(insert(_refresh), row)


async def refresh_for_update(session: AsyncSession, token_hash: str) -> Any | None:
    """Return the refresh token a hash names, locked for update."""
    query = select(_refresh).where(_refresh.c.token_hash == token_hash).with_for_update()
    return (await session.execute(query)).first()


async def spend_refresh(session: AsyncSession, token_id: uuid.UUID, now: dt.datetime) -> bool:
    """Mark a refresh token used, if it is still unused and unrevoked."""
    c = _refresh.c
    result = await session.execute(
        update(_refresh)
        .where(c.id == token_id, c.used_at.is_(None), c.revoked_at.is_(None))
        .values(used_at=now)
    )
    return bool(cast(Any, result).rowcount)


async def revoke_family(
    session: AsyncSession,
    family_id: uuid.UUID,
    *,
    reason: str,
    now: dt.datetime,
    forget_after: dt.datetime,
) -> None:
    """Revoke every refresh token of a session and record the session as revoked."""
    c = _refresh.c
    await session.execute(
        update(_refresh)
        .where(c.family_id == family_id, c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    values = {
        "family_id": family_id,
        "reason": reason,
        "revoked_at": now,
        "forget_after": forget_after,
    }
    if _dialect(session) == "postgresql":
        statement: Any = postgresql.insert(_revoked).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(_revoked).on_conflict_do_nothing()
    await session.execute(statement, values)


async def revoke_subject_sessions(
    session: AsyncSession,
    subject_kind: str,
    subject_id: uuid.UUID,
    *,
    reason: str,
    now: dt.datetime,
    forget_after: dt.datetime,
) -> list[uuid.UUID]:
    """Revoke every live session of one subject (e.g. after a password change)."""
    c = _refresh.c
    query = (
        select(c.family_id)
        .distinct()
        .where(
            c.subject_kind == subject_kind,
            c.subject_id == subject_id,
            c.revoked_at.is_(None),
            c.expires_at > now,
        )
    )
    families = list((await session.execute(query)).scalars())
    for family in families:
        await revoke_family(session, family, reason=reason, now=now, forget_after=forget_after)
    return families


async def revoked_since(
    session: AsyncSession, since: dt.datetime | None, now: dt.datetime
) -> list[Any]:
    """Return sessions revoked at or after ``since`` (None: ever) whose tokens may still be
    alive."""
    c = _revoked.c
    query = select(c.family_id, c.revoked_at).where(c.forget_after > now)
    if since is not None:
        query = query.where(c.revoked_at >= since)
    return list((await session.execute(query)).all())


async def forget_revocations(session: AsyncSession, now: dt.datetime) -> None:
    """Delete revocations whose tokens have all expired, and spent refresh tokens."""
    await session.execute(delete(_revoked).where(_revoked.c.forget_after <= now))
    await session.execute(delete(_refresh).where(_refresh.c.expires_at <= now))
    await session.execute(delete(_challenges).where(_challenges.c.expires_at <= now))
    # A nonce older than twice the allowed clock skew can only come with a refused timestamp.
    await prune_nonces(session, now - dt.timedelta(seconds=2 * MAX_SKEW_SECONDS))


# --- signing keys ---


async def signing_keys(session: AsyncSession, retired_after: dt.datetime) -> list[Any]:
    """Return the keys that may still have signed a live token, newest first."""
    c = _keys.c
    query = (
        select(_keys)
        .where(c.retired_at.is_(None) | (c.retired_at > retired_after))
        .order_by(c.created_at.desc(), c.kid.desc())
    )
    return list((await session.execute(query)).all())


async def insert_signing_key(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a new signing key."""
    await session.execute(insert(_keys), row)


async def retire_signing_keys(session: AsyncSession, keep: str, now: dt.datetime) -> None:
    """Retire every active key but ``keep``."""
    c = _keys.c
    await session.execute(
        update(_keys).where(c.retired_at.is_(None), c.kid != keep).values(retired_at=now)
    )


# --- audit chain ---


async def lock_audit_chain(session: AsyncSession) -> None:
    """Serialize appends to the chain until this transaction ends. (SQLite's single writer
    already serializes them.)"""
    if _dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})


async def last_audit(session: AsyncSession) -> Any | None:
    """Return the chain's last record (its seq and hash)."""
    c = _audit.c
    query = select(c.seq, c.hash).order_by(c.seq.desc()).limit(1)
    return (await session.execute(query)).first()


async def append_audit(session: AsyncSession, row: dict[str, Any]) -> None:
    """Append one record to the chain."""
    await session.execute(insert(_audit), row)


async def audit_records(session: AsyncSession, *, batch: int = 1000) -> AsyncIterator[Any]:
    """Yield every audit record in chain order, a batch at a time."""
    after = 0
    while True:
        query = select(_audit).where(_audit.c.seq > after).order_by(_audit.c.seq).limit(batch)
        rows = (await session.execute(query)).all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].seq


# --- four-eyes approvals ---


async def insert_approval(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a new pending approval."""
    await session.execute(insert(_approvals), row)


async def approval(
    session: AsyncSession, approval_id: uuid.UUID, *, for_update: bool = False
) -> Any | None:
    """Return one approval."""
    query = select(_approvals).where(_approvals.c.id == approval_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def pending_approvals(session: AsyncSession, *, limit: int = 200) -> list[Any]:
    """Return the pending approvals, oldest first."""
    c = _approvals.c
    query = select(_approvals).where(c.status == "pending").order_by(c.requested_at).limit(limit)
    return list((await session.execute(query)).all())


async def decide_approval(
    session: AsyncSession,
    approval_id: uuid.UUID,
    *,
    status: str,
    by: uuid.UUID,
    by_name: str,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """Record the decision on a pending approval."""
    c = _approvals.c
    await session.execute(
        update(_approvals)
        .where(c.id == approval_id, c.status == "pending")
        .values(
            status=status, decided_by=by, decided_by_name=by_name, decided_at=now, reason=reason
        )
    )


# --- partner apps, nonces and consents ---


async def partner_app(session: AsyncSession, client_id: str) -> Any | None:
    """Return a partner app."""
    return (await session.execute(select(_apps).where(_apps.c.client_id == client_id))).first()


async def insert_partner_app(session: AsyncSession, row: dict[str, Any]) -> None:
    """Register a partner app."""
    await session.execute(insert(_apps), row)


async def use_nonce(session: AsyncSession, client_id: str, nonce: str, now: dt.datetime) -> bool:
    """Record a request nonce; False if the app used it before (a replay)."""
    values = {"client_id": client_id, "nonce": nonce, "seen_at": now}
    if _dialect(session) == "postgresql":
        statement: Any = postgresql.insert(_nonces).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(_nonces).on_conflict_do_nothing()
    result = await session.execute(statement, values)
    return bool(cast(Any, result).rowcount)


async def prune_nonces(session: AsyncSession, before: dt.datetime) -> None:
    """Forget nonces older than any timestamp still accepted."""
    await session.execute(delete(_nonces).where(_nonces.c.seen_at < before))


async def insert_consent(session: AsyncSession, row: dict[str, Any]) -> None:
    """Store a customer's consent."""
    await session.execute(insert(_consents), row)


async def consent(session: AsyncSession, consent_id: uuid.UUID) -> Any | None:
    """Return one consent."""
    query = select(_consents).where(_consents.c.id == consent_id)
    return (await session.execute(query)).first()


async def consents_of_customer(session: AsyncSession, customer_id: uuid.UUID) -> list[Any]:
    """Return a customer's consents, newest first."""
    c = _consents.c
    query = select(_consents).where(c.customer_id == customer_id).order_by(c.granted_at.desc())
    return list((await session.execute(query)).all())


async def revoke_consent(session: AsyncSession, consent_id: uuid.UUID, now: dt.datetime) -> bool:
    """Revoke a consent that is still in force; False if it was not."""
    c = _consents.c
    result = await session.execute(
        update(_consents).where(c.id == consent_id, c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(cast(Any, result).rowcount)


# --- terminals ---


async def insert_terminal(session: AsyncSession, row: dict[str, Any]) -> None:
    """Register a terminal."""
    await session.execute(insert(_terminals), row)


async def terminal(session: AsyncSession, terminal_id: str) -> Any | None:
    """Return a registered terminal."""
    query = select(_terminals).where(_terminals.c.terminal_id == terminal_id)
    return (await session.execute(query)).first()
