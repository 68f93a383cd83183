"""The security center's refusals, each with its catalog code. Messages never name a secret,
and never say whether a username exists."""

from __future__ import annotations

from channelhub.kit.errors import ChannelhubError

__all__ = [
    "AddressNotAllowed",
    "ApprovalNotPending",
    "ChallengeInvalid",
    "ChannelNotAllowed",
    "ConsentInvalid",
    "InvalidCredentials",
    "LoginLocked",
    "MfaNotEnrolled",
    "OtpInvalid",
    "PasswordChangeRequired",
    "PasswordRejected",
    "RequestExpired",
    "RequestReplayed",
    "SameApprover",
    "SignatureInvalid",
    "TokenInvalid",
]


class InvalidCredentials(ChannelhubError):
    """Unknown username, wrong password or inactive user: one answer for all three."""

    code = "INVALID_CREDENTIALS"


class LoginLocked(ChannelhubError):
    """Too many failed logins for this username; ``details['retry_after']`` in seconds."""

    code = "LOGIN_LOCKED"


class OtpInvalid(ChannelhubError):
    """The one-time code is wrong, outside the drift window, or already used."""

    code = "OTP_INVALID"


class ChallengeInvalid(ChannelhubError):
    """The MFA or step-up token names no open challenge: unknown, used, expired or spent."""

    code = "CHALLENGE_INVALID"


class TokenInvalid(ChannelhubError):
    """An access or refresh token that is forged, expired, revoked or spent."""

    code = "TOKEN_INVALID"


class ChannelNotAllowed(ChannelhubError):
    """The user may not log in through this channel."""

    code = "CHANNEL_NOT_ALLOWED"


class PasswordRejected(ChannelhubError):
    """A new password breaks the rules; ``details['reason']`` says which."""

    code = "PASSWORD_REJECTED"


class MfaNotEnrolled(ChannelhubError):
    """The operation needs a confirmed second factor and there is none."""

    code = "MFA_NOT_ENROLLED"


class SameApprover(ChannelhubError):
    """Four-eyes: the staff member who asked for an operation tried to approve it."""

    code = "SAME_APPROVER"


class ApprovalNotPending(ChannelhubError):
    """The approval was already decided, or it expired."""

    code = "APPROVAL_NOT_PENDING"


class PasswordChangeRequired(ChannelhubError):
    """The right password, but staff reset it: it must be changed before a login."""

    code = "PASSWORD_CHANGE_REQUIRED"


class SignatureInvalid(ChannelhubError):
    """A partner request's signature headers are missing or do not sign it."""

    code = "SIGNATURE_INVALID"


class RequestExpired(ChannelhubError):
    """A partner request's timestamp is more than five minutes from the server's clock."""

    code = "REQUEST_EXPIRED"


class RequestReplayed(ChannelhubError):
    """A partner request's nonce was used before."""

    code = "REQUEST_REPLAYED"


class AddressNotAllowed(ChannelhubError):
    """A partner call from an address outside the app's allow-list."""

    code = "ADDRESS_NOT_ALLOWED"


class ConsentInvalid(ChannelhubError):
    """No consent in force lets this app do this for this customer."""

    code = "CONSENT_INVALID"
