"""The shapes at the security center's edge: request bodies, token answers, configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from channelhub.security.passwords import MAX_PASSWORD_LENGTH

__all__ = [
    "ApprovalDecisionBody",
    "ChangePasswordBody",
    "LoginBody",
    "LogoutBody",
    "MfaBody",
    "MfaRequired",
    "PasswordResetBody",
    "RefreshBody",
    "SecurityConfig",
    "StaffLoginBody",
    "TokenPair",
    "TotpConfirmBody",
]

_Body = ConfigDict(extra="forbid", str_strip_whitespace=False)
_VISIBLE = r"^[\x21-\x7e]+$"


class LoginBody(BaseModel):
    """``POST /api/v1/auth/login``."""

    model_config = _Body

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    device_id: str = Field(min_length=1, max_length=128, pattern=_VISIBLE)
    channel: Literal["mobile", "web"] = "mobile"


class StaffLoginBody(BaseModel):
    """``POST /staff/v1/auth/login``: staff always answer a second factor next."""

    model_config = _Body

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    device_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=_VISIBLE)
    channel: Literal["teller", "console"] = "teller"


class ChangePasswordBody(BaseModel):
    """``POST /api/v1/auth/password``: the current password proves who asks."""

    model_config = _Body

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class PasswordResetBody(BaseModel):
    """``POST /staff/v1/password-resets``: the customer user whose password is reset."""

    model_config = _Body

    username: str = Field(min_length=1, max_length=64)


class ApprovalDecisionBody(BaseModel):
    """``POST /staff/v1/approvals/{id}/approve`` or ``/reject``."""

    model_config = _Body

    reason: str | None = Field(default=None, max_length=200)


class MfaBody(BaseModel):
    """``POST /api/v1/auth/mfa``."""

    model_config = _Body

    mfa_token: str = Field(min_length=16, max_length=128, pattern=_VISIBLE)
    otp: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


class TotpConfirmBody(BaseModel):
    """``POST /api/v1/auth/totp/confirm``: the first code of a new authenticator."""

    model_config = _Body

    otp: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


class RefreshBody(BaseModel):
    """``POST /api/v1/auth/refresh``."""

    model_config = _Body

    refresh_token: str = Field(min_length=16, max_length=128, pattern=_VISIBLE)


class LogoutBody(BaseModel):
    """``POST /api/v1/auth/logout``: the refresh token, or nothing when a bearer token is sent."""

    model_config = _Body

    refresh_token: str | None = Field(default=None, min_length=16, max_length=128, pattern=_VISIBLE)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A login's answer: an access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int
    auth_level: str

    def wire(self) -> dict[str, object]:
        """Return the body of the answer (OAuth 2 field names)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """A login that needs a second factor first: the token names the open challenge."""

    mfa_token: str
    expires_in: int

    def wire(self) -> dict[str, object]:
        """Return the body of the answer."""
        return {"mfa_required": True, "mfa_token": self.mfa_token, "expires_in": self.expires_in}


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The settings the security center runs with (built from the node's settings)."""

    master_key: bytes
    issuer: str
    audience: str
    access_token_seconds: int
    refresh_token_seconds: int
    challenge_seconds: int
    challenge_attempts: int
    max_failed_logins: int
    lockout_seconds: int
    totp_drift_steps: int
    argon2_memory_kib: int
    argon2_time_cost: int
    argon2_parallelism: int
    sync_seconds: float
    totp_issuer: str = "channelhub"
