"""Step-up authentication: a fresh second factor bound to one transaction.

The first call of a transaction that needs it is answered STEP_UP_REQUIRED with a challenge
that names the service, the amount and the beneficiary (dynamic linking, as strong customer
authentication requires). The retry carries the challenge and a one-time code; the code is
accepted only for that challenge, and the challenge only for that very transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from channelhub.kernel.authorize import StepUpBinding
from channelhub.kernel.errors import StepUpRequired
from channelhub.kernel.model import StepUpProof, TransactionRequest
from channelhub.kit.clock import utc_now
from channelhub.kit.ids import new_id
from channelhub.security import repository
from channelhub.security.audit_trail import record_audit
from channelhub.security.errors import ChallengeInvalid, MfaNotEnrolled, OtpInvalid
from channelhub.security.service import SecurityCenter, new_token, token_digest

__all__ = ["StepUpGate"]


def _proof_digest(challenge_id: uuid.UUID, otp: str) -> str:
    return hashlib.sha256(f"{challenge_id}:{otp}".encode()).hexdigest()


class StepUpGate:
    """The kernel's step-up check, backed by the security center."""

    def __init__(self, center: SecurityCenter) -> None:
        self._center = center

    async def __call__(self, request: TransactionRequest, binding: StepUpBinding) -> None:
        """Return when ``request`` carries a valid proof bound to ``binding``; else raise.

        Raises:
            StepUpRequired: no proof yet; ``details`` carry the new challenge.
            ChallengeInvalid: unknown, expired, spent, or bound to another transaction.
            OtpInvalid: the code is wrong or was already used.
            MfaNotEnrolled: the customer has no second factor to step up with.
        """
        subject = uuid.UUID(str(request.principal.id))
        if request.step_up is None:
            await self._challenge(request, subject, binding)
        else:
            await self._check(request, request.step_up, subject, binding)

    async def _challenge(
        self, request: TransactionRequest, subject: uuid.UUID, binding: StepUpBinding
    ) -> None:
        center, now = self._center, utc_now()
        token = new_token()
        async with center.sessions() as session, session.begin():
            credential = await repository.credential(session, "customer", subject)
            if credential is None or credential.totp_confirmed_at is None:
                raise MfaNotEnrolled("this transaction needs a second factor; enrol one first")
            await repository.insert_challenge(
                session,
                {
                    "id": new_id(),
                    "token_hash": token_digest(token),
                    "purpose": "step_up",
                    "subject_kind": "customer",
                    "subject_id": subject,
                    "channel": request.channel,
                    "device_id": request.device_id,
                    "binding": binding.as_dict(),
                    "attempts": 0,
                    "created_at": now,
                    "expires_at": now + dt.timedelta(seconds=center.config.challenge_seconds),
                    "used_at": None,
                    "proof_digest": None,
                },
            )
            await self._audit(session, request, "step_up.challenge", "issued", binding, now)
        shown = {k: v for k, v in binding.as_dict().items() if k != "idempotency_key"}
        raise StepUpRequired(
            "confirm this transaction with a one-time code",
            details={
                "challenge": token,
                "expires_in": center.config.challenge_seconds,
                "confirms": shown,
            },
        )

    async def _check(
        self,
        request: TransactionRequest,
        proof: StepUpProof,
        subject: uuid.UUID,
        binding: StepUpBinding,
    ) -> None:
        center, now = self._center, utc_now()
        refusal: Exception | None = None
        async with center.sessions() as session, session.begin():
            challenge = await repository.challenge_for_update(
                session, token_digest(proof.challenge)
            )
            refusal = self._refusal(challenge, subject, binding, now)
            if refusal is not None:
                if challenge is not None:
                    await self._audit(session, request, "step_up", "refused", binding, now)
            else:
                assert challenge is not None  # _refusal refuses a missing one
                digest = _proof_digest(challenge.id, proof.otp)
                if challenge.used_at is not None:
                    # A retry of the very request this code confirmed (same idempotency key,
                    # same code): let it through, and the journal answers with the first result.
                    if challenge.proof_digest != digest or binding.idempotency_key is None:
                        refusal = ChallengeInvalid("the challenge was already used")
                else:
                    refusal = await self._verify(session, challenge, proof.otp, digest, now)
                    outcome = "failed" if refusal is not None else "succeeded"
                    await self._audit(session, request, "step_up", outcome, binding, now)
        if refusal is not None:
            raise refusal

    def _refusal(
        self, challenge: Any | None, subject: uuid.UUID, binding: StepUpBinding, now: dt.datetime
    ) -> Exception | None:
        if (
            challenge is None
            or challenge.purpose != "step_up"
            or challenge.subject_kind != "customer"
            or challenge.subject_id != subject
            or challenge.expires_at <= now
            or challenge.attempts >= self._center.config.challenge_attempts
        ):
            return ChallengeInvalid("the challenge is unknown, used or expired")
        if dict(challenge.binding) != binding.as_dict():
            return ChallengeInvalid("the challenge confirms another transaction")
        return None

    async def _verify(
        self, session: Any, challenge: Any, otp: str, digest: str, now: dt.datetime
    ) -> Exception | None:
        credential = await repository.credential(
            session, "customer", challenge.subject_id, for_update=True
        )
        step = self._center.otp_step(credential, otp, now) if credential is not None else None
        if (
            credential is None
            or step is None
            or not await repository.accept_totp_step(session, credential.id, step)
        ):
            await repository.bump_challenge(session, challenge.id)
            return OtpInvalid("the one-time code is wrong or expired")
        await repository.spend_challenge(session, challenge.id, now, digest)
        return None

    async def _audit(
        self,
        session: Any,
        request: TransactionRequest,
        action: str,
        outcome: str,
        binding: StepUpBinding,
        now: dt.datetime,
    ) -> None:
        await record_audit(
            session,
            action=action,
            outcome=outcome,
            actor_kind="customer",
            actor_id=request.principal.attributes.get("username"),
            channel=request.channel,
            source_address=request.source_address,
            details={
                "service": binding.service_id,
                "amount": binding.amount,
                "currency": binding.currency,
            },
            now=now,
        )
