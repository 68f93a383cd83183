"""The security center's operations: logins, second factors, tokens, sessions and the audit log.

Every channel authenticates through one ``SecurityCenter``. It issues and verifies tokens from
keys it holds in memory, and learns of sessions revoked on other nodes and of new signing keys
by reading the database every few seconds (``sync``), so that verifying a request never waits
for the database.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channelhub.cau import service as cau
from channelhub.kernel.errors import Forbidden
from channelhub.kernel.model import AuthLevel, Principal, PrincipalKind
from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.security import repository, totp
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import (
    ChallengeInvalid,
    ChannelNotAllowed,
    InvalidCredentials,
    LoginLocked,
    MfaNotEnrolled,
    OtpInvalid,
    PasswordChangeRequired,
    PasswordRejected,
    TokenInvalid,
)
from channelhub.security.passwords import Passwords, password_problem
from channelhub.security.rbac import permissions_of
from channelhub.security.schemas import MfaRequired, SecurityConfig, TokenPair
from channelhub.security.ssm import SoftwareSecurityModule
from channelhub.security.tokens import (
    AccessClaims,
    InvalidToken,
    KeyPair,
    TokenSigner,
    TokenVerifier,
)

__all__ = ["SecurityCenter", "new_token", "password_changed_at", "token_digest"]

log = get_logger(__name__)

_TOTP_PURPOSE = "totp"
_KEY_PURPOSE = "signing-key"
#: How often, at most, an unknown key id makes a node re-read the keys.
_KEY_RELOAD_SECONDS = 1.0
#: Every this many syncs, the revoked sessions and keys are read whole, not just what is new.
_FULL_SYNC_EVERY = 30
_LOOK_BACK = dt.timedelta(seconds=10)


def token_digest(token: str) -> str:
    """Return the SHA-256 (hex) a random token is stored and found by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a new random bearer token (256 bits, URL-safe)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _throttle_key(kind: str, username: str) -> str:
    return hashlib.sha256(f"{kind}:{username.strip().lower()}".encode()).hexdigest()


class SecurityCenter:
    """One node's security center."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        config: SecurityConfig,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.ssm = SoftwareSecurityModule(config.master_key)
        self.passwords = Passwords(
            memory_kib=config.argon2_memory_kib,
            time_cost=config.argon2_time_cost,
            parallelism=config.argon2_parallelism,
        )
        self.verifier = TokenVerifier(issuer=config.issuer, audience=config.audience)
        self._signer: TokenSigner | None = None
        self._jwks: list[dict[str, Any]] = []
        self._synced_at: dt.datetime | None = None
        self._syncs = 0
        self._keys_read_at = 0.0
        self._lock = asyncio.Lock()

    # --- keys and revocations ---

    async def start(self) -> None:
        """Load (or make) the signing keys and the revoked sessions; call before serving."""
        await self._load_keys(create=True)
        await self.sync(full=True)
        await asyncio.to_thread(self.passwords.warm)

    async def _load_keys(self, *, create: bool = False) -> None:
        now = utc_now()
        # A key retired less than a token's lifetime ago may have signed a live token.
        horizon = now - dt.timedelta(seconds=self.config.access_token_seconds + 60)
        async with self.sessions() as session, session.begin():
            rows = await repository.signing_keys(session, horizon)
            if create and not any(row.retired_at is None for row in rows):
                await self._new_key(session, now)
                rows = await repository.signing_keys(session, horizon)
        active = [row for row in rows if row.retired_at is None]
        pairs = [KeyPair.from_jwk(row.public_jwk) for row in rows]
        self.verifier.set_keys(pairs)
        self._jwks = [dict(row.public_jwk) for row in rows]
        if active:
            newest = active[0]
            pem = self.ssm.open(newest.private_sealed, f"{_KEY_PURPOSE}:{newest.kid}")
            self._signer = TokenSigner(
                KeyPair.from_pem(newest.kid, pem),
                issuer=self.config.issuer,
                audience=self.config.audience,
                lifetime=self.config.access_token_seconds,
            )
        self._keys_read_at = asyncio.get_running_loop().time()

    async def _new_key(self, session: AsyncSession, now: dt.datetime) -> str:
        kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
        pair = KeyPair.generate(kid)
        await repository.insert_signing_key(
            session,
            {
                "kid": kid,
                "algorithm": "EdDSA",
                "private_sealed": self.ssm.seal(pair.private_pem(), f"{_KEY_PURPOSE}:{kid}"),
                "public_jwk": pair.public_jwk(),
                "created_at": now,
                "retired_at": None,
            },
        )
        return kid

    async def rotate_key(self) -> str:
        """Make a new signing key and retire the others (they verify until their tokens
        expire); return the new key's id. Other nodes switch at their next sync."""
        now = utc_now()
        async with self.sessions() as session, session.begin():
            kid = await self._new_key(session, now)
            await repository.retire_signing_keys(session, kid, now)
            await record_audit(
                session,
                action="signing_key.rotate",
                outcome="succeeded",
                actor_kind="system",
                actor_id=None,
                details={"kid": kid},
                now=now,
            )
        await self._load_keys()
        return kid

    def jwks(self) -> dict[str, Any]:
        """Return the JSON Web Key Set of every key a live token may be signed with."""
        return {"keys": list(self._jwks)}

    async def sync(self, *, full: bool = False) -> None:
        """Learn of sessions revoked elsewhere (and, now and then, of new keys)."""
        now = utc_now()
        self._syncs += 1
        full = full or self._synced_at is None or self._syncs % _FULL_SYNC_EVERY == 0
        # Rows committed a moment after a later-stamped one are not missed: look back a little.
        since = None if full or self._synced_at is None else self._synced_at - _LOOK_BACK
        async with self.sessions() as session, session.begin():
            rows = await repository.revoked_since(session, since, now)
            if full:
                await repository.forget_revocations(session, now)
        revoked = [str(row.family_id) for row in rows]
        if full:
            self.verifier.replace_revocations(revoked)
            await self._load_keys()
        else:
            self.verifier.revoke(revoked)
        self._synced_at = now

    # --- verifying a request ---

    async def authenticate(self, token: str) -> Principal:
        """Return the principal an access token vouches for.

        Raises:
            TokenInvalid: the token is not valid now (the reason goes to the log only).
        """
        try:
            claims = self.verifier.verify(token)
        except InvalidToken as error:
            kid = self.verifier.key_id(token)
            loop_time = asyncio.get_running_loop().time()
            if (
                kid is not None
                and not self.verifier.knows(kid)
                and loop_time - self._keys_read_at > _KEY_RELOAD_SECONDS
            ):
                # A key made by another node since our last sync: read the keys, once.
                await self._load_keys()
                return await self.authenticate(token)
            log.info("token_refused", reason=str(error))
            raise TokenInvalid("the access token is invalid, expired or revoked") from None
        try:
            return _principal(claims)
        except ValueError:  # a kind or level this version does not know
            raise TokenInvalid("the access token is invalid, expired or revoked") from None

    # --- logins ---

    async def login(
        self,
        *,
        username: str,
        password: str,
        device_id: str | None,
        channel: str,
        kind: str = "customer",
        source_address: str | None = None,
    ) -> TokenPair | MfaRequired:
        """Check a username and password; answer tokens, or a second-factor challenge when
        the device is new (or the identity is staff).

        Raises:
            LoginLocked: too many recent failures for this username, known or not.
            InvalidCredentials: unknown username, wrong password, inactive identity.
            ChannelNotAllowed: the right password, through a channel the user may not use.
        """
        now = utc_now()
        key, identity, credential = await self._check_password(
            kind, username, password, channel, source_address
        )
        if channel not in identity.channels:
            async with self.sessions() as session, session.begin():
                await record_audit(
                    session,
                    action="login",
                    outcome="channel_not_allowed",
                    actor_kind=kind,
                    actor_id=identity.username,
                    channel=channel,
                    source_address=source_address,
                )
            raise ChannelNotAllowed(f"this user may not log in through {channel}")
        if credential.must_change_password:
            async with self.sessions() as session, session.begin():
                await repository.clear_failures(session, key)
            raise PasswordChangeRequired("the password was reset; change it before logging in")
        if kind == "staff" and credential.totp_confirmed_at is None:
            raise MfaNotEnrolled("staff log in with a second factor; none is enrolled")
        rehash = (
            await asyncio.to_thread(self.passwords.hash, password)
            if self.passwords.needs_rehash(credential.password_hash)
            else None
        )
        async with self.sessions() as session, session.begin():
            await repository.clear_failures(session, key)
            if rehash is not None:
                await repository.set_password(
                    session,
                    credential.id,
                    rehash,
                    must_change=credential.must_change_password,
                    now=credential.password_changed_at,
                )
            second_factor = credential.totp_confirmed_at is not None
            known_device = (
                kind == "customer"
                and device_id is not None
                and await cau.device_bound(session, identity.id, device_id)
            )
            if second_factor and (kind == "staff" or not known_device):
                answer: TokenPair | MfaRequired = await self._challenge(
                    session, identity, channel, device_id, now
                )
                outcome = "mfa_required"
            else:
                answer = await self._issue(
                    session, identity, channel, device_id, AuthLevel.PASSWORD, now
                )
                outcome = "succeeded"
            await record_audit(
                session,
                action="login",
                outcome=outcome,
                actor_kind=kind,
                actor_id=identity.username,
                channel=channel,
                source_address=source_address,
                details={"device_bound": bool(known_device)},
                now=now,
            )
        return answer

    async def _check_password(
        self,
        kind: str,
        username: str,
        password: str,
        channel: str,
        source_address: str | None,
    ) -> tuple[str, cau.LoginIdentity, Any]:
        """Check a username and password as a login does; return the lockout key, the
        identity and its credential.

        Raises:
            LoginLocked: too many recent failures for this username, known or not.
            InvalidCredentials: unknown username, wrong password, inactive identity.
        """
        now = utc_now()
        key = _throttle_key(kind, username)
        retry = 0
        identity, credential = None, None
        async with self.sessions() as session, session.begin():
            throttle = await repository.throttle(session, key)
            if throttle is not None and throttle.locked_until and throttle.locked_until > now:
                retry = int((throttle.locked_until - now).total_seconds()) + 1
                await record_audit(
                    session,
                    action="login",
                    outcome="locked",
                    actor_kind=kind,
                    actor_id=None,
                    channel=channel,
                    source_address=source_address,
                    now=now,
                )
            else:
                identity = await cau.login_identity(session, kind, username)
                credential = (
                    await repository.credential(session, kind, identity.id) if identity else None
                )
        if retry:  # raised after the commit, so that the refused attempt stays audited
            raise LoginLocked(
                "too many failed logins; try again later", details={"retry_after": retry}
            )
        stored = credential.password_hash if credential is not None else None
        # argon2 in a worker thread; an unknown user is checked against a dummy hash, so both
        # answers take the same time.
        matches = await asyncio.to_thread(self.passwords.verify, stored, password)
        if not matches or identity is None or credential is None or not identity.active:
            await self._login_failed(key, kind, identity, channel, source_address)
            raise InvalidCredentials("the username or password is wrong")
        return key, identity, credential

    async def _login_failed(
        self,
        key: str,
        kind: str,
        identity: cau.LoginIdentity | None,
        channel: str,
        source_address: str | None,
    ) -> None:
        now = utc_now()
        window = dt.timedelta(seconds=self.config.lockout_seconds)
        async with self.sessions() as session, session.begin():
            failures, locked = await repository.record_failure(
                session,
                key,
                now=now,
                window_start=now - window,
                limit=self.config.max_failed_logins,
                locked_until=now + window,
            )
            # The audit names a known identity only: an unknown "username" is often a
            # password typed into the wrong field.
            await record_audit(
                session,
                action="login",
                outcome="failed",
                actor_kind=kind,
                actor_id=identity.username if identity is not None else None,
                channel=channel,
                source_address=source_address,
                details={"failures": failures, "locked": locked is not None},
                now=now,
            )

    async def _challenge(
        self,
        session: AsyncSession,
        identity: cau.LoginIdentity,
        channel: str,
        device_id: str | None,
        now: dt.datetime,
    ) -> MfaRequired:
        token = new_token()
        await repository.insert_challenge(
            session,
            {
                "id": new_id(),
                "token_hash": token_digest(token),
                "purpose": "login",
                "subject_kind": identity.kind,
                "subject_id": identity.id,
                "channel": channel,
                "device_id": device_id,
                "binding": {},
                "attempts": 0,
                "created_at": now,
                "expires_at": now + dt.timedelta(seconds=self.config.challenge_seconds),
                "used_at": None,
            },
        )
        return MfaRequired(mfa_token=token, expires_in=self.config.challenge_seconds)

    async def _issue(
        self,
        session: AsyncSession,
        identity: cau.LoginIdentity,
        channel: str,
        device_id: str | None,
        level: AuthLevel,
        now: dt.datetime,
        family_id: uuid.UUID | None = None,
    ) -> TokenPair:
        if self._signer is None:
            raise RuntimeError("the security center was not started")
        family = family_id or new_id()
        refresh = new_token()
        await repository.insert_refresh(
            session,
            {
                "id": new_id(),
                "token_hash": token_digest(refresh),
                "family_id": family,
                "subject_kind": identity.kind,
                "subject_id": identity.id,
                "channel": channel,
                "device_id": device_id,
                "auth_level": level.value,
                "issued_at": now,
                "expires_at": now + dt.timedelta(seconds=self.config.refresh_token_seconds),
                "used_at": None,
                "revoked_at": None,
            },
        )
        extra = {"usr": identity.username}
        if identity.customer_id is not None:
            extra["cid"] = str(identity.customer_id)
        if identity.role is not None:
            extra["role"] = identity.role
        if identity.branch_code is not None:
            extra["branch"] = identity.branch_code
        access = self._signer.issue(
            scopes=(
                permissions_of(identity.role) if identity.kind == "staff" else cau.CUSTOMER_SCOPES
            ),
            subject_kind=identity.kind,
            subject_id=str(identity.id),
            session_id=str(family),
            channel=channel,
            auth_level=level.value,
            device_id=device_id,
            extra=extra,
            now=now,
        )
        return TokenPair(access, refresh, self._signer.lifetime, level.value)

    def issue_partner_token(
        self, *, client_id: str, scopes: frozenset[str], now: dt.datetime
    ) -> str:
        """Return an access token for a partner app (client credentials: no refresh token;
        the app asks again when it expires)."""
        if self._signer is None:
            raise RuntimeError("the security center was not started")
        return self._signer.issue(
            subject_kind="partner",
            subject_id=client_id,
            session_id=str(new_id()),
            channel="partner",
            auth_level=AuthLevel.NONE.value,
            scopes=scopes,
            extra={"usr": client_id},
            now=now,
        )

    async def complete_mfa(
        self, *, mfa_token: str, otp: str, source_address: str | None = None
    ) -> TokenPair:
        """Check the second factor of a login challenge; bind the device; answer tokens.

        Raises:
            ChallengeInvalid: no open login challenge has this token.
            OtpInvalid: the code is wrong, stale or used (the challenge counts the attempt).
        """
        now = utc_now()
        async with self.sessions() as session:
            async with session.begin():
                challenge = self._open_challenge(
                    await repository.challenge_for_update(session, token_digest(mfa_token)),
                    "login",
                    now,
                )
                identity = await cau.login_identity_by_id(
                    session, challenge.subject_kind, challenge.subject_id
                )
                credential = await repository.credential(
                    session, challenge.subject_kind, challenge.subject_id, for_update=True
                )
                if identity is None or not identity.active or credential is None:
                    raise ChallengeInvalid("the challenge is no longer valid")
                step = self.otp_step(credential, otp, now)
                if step is None or not await repository.accept_totp_step(
                    session, credential.id, step
                ):
                    await repository.bump_challenge(session, challenge.id)
                    await record_audit(
                        session,
                        action="mfa",
                        outcome="failed",
                        actor_kind=identity.kind,
                        actor_id=identity.username,
                        channel=challenge.channel,
                        source_address=source_address,
                        details={"attempt": challenge.attempts + 1},
                        now=now,
                    )
                    failed = True
                else:
                    failed = False
                    await repository.spend_challenge(session, challenge.id, now)
                    if identity.kind == "customer" and challenge.device_id is not None:
                        await cau.bind_device(session, identity.id, challenge.device_id, now=now)
                    pair = await self._issue(
                        session,
                        identity,
                        challenge.channel,
                        challenge.device_id,
                        AuthLevel.MFA,
                        now,
                    )
                    await record_audit(
                        session,
                        action="mfa",
                        outcome="succeeded",
                        actor_kind=identity.kind,
                        actor_id=identity.username,
                        channel=challenge.channel,
                        source_address=source_address,
                        now=now,
                    )
            if failed:
                raise OtpInvalid("the one-time code is wrong or expired")
        return pair

    def _open_challenge(self, challenge: Any | None, purpose: str, now: dt.datetime) -> Any:
        if (
            challenge is None
            or challenge.purpose != purpose
            or challenge.used_at is not None
            or challenge.expires_at <= now
            or challenge.attempts >= self.config.challenge_attempts
        ):
            raise ChallengeInvalid("the challenge is unknown, used or expired")
        return challenge

    def otp_step(self, credential: Any, otp: str, now: dt.datetime) -> int | None:
        """Return the TOTP step ``otp`` matches for this credential, or None."""
        if credential.totp_sealed is None or credential.totp_confirmed_at is None:
            return None
        secret = self.ssm.open(credential.totp_sealed, _TOTP_PURPOSE).decode()
        return totp.matching_step(
            secret,
            otp,
            now=now,
            last_step=credential.totp_last_step,
            drift=self.config.totp_drift_steps,
        )

    # --- sessions ---

    async def refresh(self, *, refresh_token: str, source_address: str | None = None) -> TokenPair:
        """Trade a refresh token for a new pair. A spent token presented again means it was
        stolen (or the client is broken): the whole session is revoked.

        Raises:
            TokenInvalid: unknown, expired, revoked or spent refresh token.
        """
        now = utc_now()
        reused = False
        async with self.sessions() as session:
            async with session.begin():
                row = await repository.refresh_for_update(session, token_digest(refresh_token))
                if row is None:
                    raise TokenInvalid("the refresh token is invalid, expired or revoked")
                identity = await cau.login_identity_by_id(session, row.subject_kind, row.subject_id)
                actor = identity.username if identity is not None else None
                if row.used_at is not None and row.revoked_at is None:
                    reused = True
                    await self._revoke(session, row.family_id, "refresh_reuse", now)
                    await record_audit(
                        session,
                        action="token.refresh",
                        outcome="reuse_detected",
                        actor_kind=row.subject_kind,
                        actor_id=actor,
                        channel=row.channel,
                        source_address=source_address,
                        details={"session": str(row.family_id)},
                        now=now,
                    )
                elif (
                    row.used_at is not None
                    or row.revoked_at is not None
                    or row.expires_at <= now
                    or identity is None
                    or not identity.active
                    or not await repository.spend_refresh(session, row.id, now)
                ):
                    raise TokenInvalid("the refresh token is invalid, expired or revoked")
                else:
                    pair = await self._issue(
                        session,
                        identity,
                        row.channel,
                        row.device_id,
                        AuthLevel(row.auth_level),
                        now,
                        family_id=row.family_id,
                    )
                    await record_audit(
                        session,
                        action="token.refresh",
                        outcome="succeeded",
                        actor_kind=row.subject_kind,
                        actor_id=actor,
                        channel=row.channel,
                        source_address=source_address,
                        now=now,
                    )
            if reused:
                raise TokenInvalid("the refresh token is invalid, expired or revoked")
        return pair

    async def logout(
        self,
        *,
        principal: Principal | None = None,
        refresh_token: str | None = None,
        source_address: str | None = None,
    ) -> bool:
        """End the session of an access token's principal or of a refresh token; every token
        of it is refused from now on. Return False when there was nothing to end."""
        now = utc_now()
        async with self.sessions() as session, session.begin():
            family: uuid.UUID | None = None
            actor_kind, actor_id, channel = "anonymous", None, None
            if principal is not None and principal.attributes.get("session_id"):
                family = uuid.UUID(principal.attributes["session_id"])
                actor_kind = principal.kind.value
                actor_id = principal.attributes.get("username")
                channel = principal.attributes.get("channel")
            elif refresh_token is not None:
                row = await repository.refresh_for_update(session, token_digest(refresh_token))
                if row is not None:
                    identity = await cau.login_identity_by_id(
                        session, row.subject_kind, row.subject_id
                    )
                    actor_kind, channel = row.subject_kind, row.channel
                    actor_id = identity.username if identity is not None else None
                    if row.revoked_at is None and row.expires_at > now:
                        family = row.family_id
            if family is not None:
                await self._revoke(session, family, "logout", now)
            await record_audit(
                session,
                action="logout",
                outcome="succeeded" if family is not None else "no_session",
                actor_kind=actor_kind,
                actor_id=actor_id,
                channel=channel,
                source_address=source_address,
                details={"session": str(family)} if family is not None else {},
                now=now,
            )
        return family is not None

    async def _revoke(
        self, session: AsyncSession, family: uuid.UUID, reason: str, now: dt.datetime
    ) -> None:
        forget = now + dt.timedelta(seconds=self.config.access_token_seconds + 60)
        await repository.revoke_family(session, family, reason=reason, now=now, forget_after=forget)
        # This node refuses the session's tokens at once; the others at their next sync.
        self.verifier.revoke([str(family)])

    # --- credentials ---

    @staticmethod
    def throttle_key(kind: str, username: str) -> str:
        """Return the key failed logins of a username are counted under."""
        return _throttle_key(kind, username)

    async def end_sessions(
        self,
        session: AsyncSession,
        kind: str,
        subject_id: uuid.UUID,
        *,
        reason: str,
        now: dt.datetime,
    ) -> None:
        """Revoke every live session of one identity (password changed or reset)."""
        forget = now + dt.timedelta(seconds=self.config.access_token_seconds + 60)
        families = await repository.revoke_subject_sessions(
            session, kind, subject_id, reason=reason, now=now, forget_after=forget
        )
        self.verifier.revoke([str(family) for family in families])

    async def change_password(
        self,
        *,
        username: str,
        password: str,
        new_password: str,
        kind: str = "customer",
        channel: str | None = None,
        source_address: str | None = None,
    ) -> None:
        """Change a password, proving the current one (a reset's temporary one included);
        every session of the identity ends. Failures count towards the lockout like logins.

        Raises:
            LoginLocked, InvalidCredentials: as for a login.
            PasswordRejected: the new password breaks the rules or repeats the old one.
        """
        now = utc_now()
        key, identity, _ = await self._check_password(
            kind, username, password, channel or "web", source_address
        )
        if new_password == password:
            raise PasswordRejected(
                "the new password must differ from the current one",
                details={"reason": "unchanged"},
            )
        async with self.sessions() as session, session.begin():
            await self.set_password(
                session, kind, identity.id, identity.username, new_password, now=now
            )
            await repository.clear_failures(session, key)
            await self.end_sessions(session, kind, identity.id, reason="password_change", now=now)
            await record_audit(
                session,
                action="password.change",
                outcome="succeeded",
                actor_kind=kind,
                actor_id=identity.username,
                channel=channel,
                source_address=source_address,
                now=now,
            )

    async def set_password(
        self,
        session: AsyncSession,
        kind: str,
        subject_id: uuid.UUID,
        username: str,
        password: str,
        *,
        must_change: bool = False,
        enforce_rules: bool = True,
        now: dt.datetime,
    ) -> None:
        """Set (or create) an identity's password, in ``session``'s transaction. Only the
        demo seeder skips the rules (its passwords contain the username, by design).

        Raises:
            PasswordRejected: the password breaks the rules.
        """
        problem = password_problem(password, username=username) if enforce_rules else None
        if problem is not None:
            raise PasswordRejected(problem, details={"reason": problem})
        hashed = await asyncio.to_thread(self.passwords.hash, password)
        existing = await repository.credential(session, kind, subject_id, for_update=True)
        if existing is None:
            await repository.insert_credential(
                session,
                {
                    "id": new_id(),
                    "subject_kind": kind,
                    "subject_id": subject_id,
                    "password_hash": hashed,
                    "password_changed_at": now,
                    "must_change_password": must_change,
                    "totp_sealed": None,
                    "totp_confirmed_at": None,
                    "totp_last_step": None,
                    "failed_attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        else:
            await repository.set_password(
                session, existing.id, hashed, must_change=must_change, now=now
            )

    async def enroll_totp(self, principal: Principal) -> dict[str, str]:
        """Start a customer's TOTP enrolment: a new secret, pending until a first code confirms
        it; return the secret and its ``otpauth://`` provisioning URI (shown this once).

        Raises:
            Forbidden: not a logged-in customer, or a second factor is already confirmed.
            MfaNotEnrolled: the identity has no credential.
        """
        subject = self._customer_subject(principal)
        secret, now = totp.new_secret(), utc_now()
        async with self.sessions() as session, session.begin():
            credential = await repository.credential(session, "customer", subject)
            if credential is not None and credential.totp_confirmed_at is not None:
                raise Forbidden("a second factor is already enrolled")
            await self.set_totp_secret(
                session, "customer", subject, secret, confirmed=False, now=now
            )
            await record_audit(
                session,
                action="totp.enroll",
                outcome="pending",
                actor_kind="customer",
                actor_id=principal.attributes.get("username"),
                channel=principal.attributes.get("channel"),
                now=now,
            )
        uri = totp.provisioning_uri(
            secret, account=principal.attributes.get("username", ""), issuer=self.config.totp_issuer
        )
        return {"secret": secret, "provisioning_uri": uri}

    async def confirm_totp(self, principal: Principal, otp: str) -> None:
        """Confirm a pending TOTP enrolment with a first code from the authenticator.

        Raises:
            MfaNotEnrolled: no enrolment is pending.
            OtpInvalid: the code is wrong.
        """
        subject, now = self._customer_subject(principal), utc_now()
        async with self.sessions() as session:
            async with session.begin():
                credential = await repository.credential(
                    session, "customer", subject, for_update=True
                )
                if credential is None or credential.totp_sealed is None:
                    raise MfaNotEnrolled("no enrolment is pending")
                if credential.totp_confirmed_at is not None:
                    raise Forbidden("a second factor is already enrolled")
                secret = self.ssm.open(credential.totp_sealed, _TOTP_PURPOSE).decode()
                step = totp.matching_step(
                    secret, otp, now=now, last_step=None, drift=self.config.totp_drift_steps
                )
                confirmed = step is not None and await repository.accept_totp_step(
                    session, credential.id, step
                )
                if confirmed:
                    await repository.set_totp(
                        session, credential.id, credential.totp_sealed, confirmed_at=now, now=now
                    )
                await record_audit(
                    session,
                    action="totp.confirm",
                    outcome="succeeded" if confirmed else "failed",
                    actor_kind="customer",
                    actor_id=principal.attributes.get("username"),
                    channel=principal.attributes.get("channel"),
                    now=now,
                )
            if not confirmed:
                raise OtpInvalid("the one-time code is wrong or expired")

    @staticmethod
    def _customer_subject(principal: Principal) -> uuid.UUID:
        if principal.kind is not PrincipalKind.CUSTOMER or principal.id is None:
            raise Forbidden("log in as a customer first")
        return uuid.UUID(principal.id)

    async def set_totp_secret(
        self,
        session: AsyncSession,
        kind: str,
        subject_id: uuid.UUID,
        secret: str,
        *,
        confirmed: bool,
        now: dt.datetime,
    ) -> None:
        """Store a TOTP secret, sealed; confirmed at once (the demo) or pending a first code.

        Raises:
            MfaNotEnrolled: the identity has no credential to attach it to.
        """
        credential = await repository.credential(session, kind, subject_id, for_update=True)
        if credential is None:
            raise MfaNotEnrolled("set a password first")
        await repository.set_totp(
            session,
            credential.id,
            self.ssm.seal(secret.encode(), _TOTP_PURPOSE),
            confirmed_at=now if confirmed else None,
            now=now,
        )


def _principal(claims: AccessClaims) -> Principal:
    attributes = {
        "session_id": claims.session_id,
        "channel": claims.channel,
        "username": claims.extra.get("usr", ""),
    }
    if "cid" in claims.extra:
        attributes["customer_id"] = claims.extra["cid"]
    if "role" in claims.extra:
        attributes["role"] = claims.extra["role"]
    if "branch" in claims.extra:
        attributes["branch"] = claims.extra["branch"]
    if claims.device_id is not None:
        attributes["device_id"] = claims.device_id
    return Principal(
        kind=PrincipalKind(claims.subject_kind),
        id=claims.subject_id,
        auth_level=AuthLevel(claims.auth_level),
        scopes=claims.scopes,
        attributes=attributes,
    )


async def password_changed_at(
    session: AsyncSession, subject_kind: str, subject_id: str
) -> dt.datetime | None:
    """Return when a customer user or staff member last set their password (risk: minutes
    since the last password change); None if they have none."""
    try:
        subject = uuid.UUID(subject_id)
    except ValueError:
        return None
    row = await repository.credential(session, subject_kind, subject)
    return row.password_changed_at if row is not None else None
