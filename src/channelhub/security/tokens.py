"""Access tokens: JWTs signed with Ed25519 (``EdDSA``), verified from keys held in memory.

Verification pins the algorithm (no ``none``, no HMAC with a public key), requires a known key
id, and checks issuer, audience, expiry and the token type; a node never needs the database to
verify a token. A verified token is remembered until it expires, so the signature is checked
once per token and node rather than on every request: the cache holds only tokens that
verified, keyed by their exact bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

__all__ = ["ALGORITHM", "AccessClaims", "InvalidToken", "KeyPair", "TokenSigner", "TokenVerifier"]

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068's media type, not a secret)
_LEEWAY_SECONDS = 5
_CACHE_LIMIT = 50_000


class InvalidToken(Exception):
    """The token is not one this platform issued, or no longer valid. The reason is for logs;
    callers answer every case the same way."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A signing key: its id, private key (None when only verifying) and public key."""

    kid: str
    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None

    @classmethod
    def generate(cls, kid: str) -> KeyPair:
        """Return a new random key pair."""
        private = Ed25519PrivateKey.generate()
        return cls(kid=kid, public=private.public_key(), private=private)

    @classmethod
    def from_pem(cls, kid: str, pem: bytes) -> KeyPair:
        """Return the key pair of a PKCS#8 PEM private key."""
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 key")
        return cls(kid=kid, public=private.public_key(), private=private)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> KeyPair:
        """Return the verifying half of a published JWK."""
        public = OKPAlgorithm.from_jwk(json.dumps(dict(jwk)))
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return cls(kid=str(jwk["kid"]), public=public)

    def private_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM (the caller seals it)."""
        if self.private is None:
            raise ValueError("no private key")
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK (RFC 8037), with its id, use and algorithm."""
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.public))
        jwk.update(kid=self.kid, use="sig", alg=ALGORITHM)
        return jwk


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    subject_kind: str
    subject_id: str
    session_id: str
    channel: str
    auth_level: str
    scopes: frozenset[str]
    device_id: str | None
    expires_at: int
    extra: Mapping[str, str]


class TokenSigner:
    """Issues access tokens with the active key."""

    __slots__ = ("_audience", "_issuer", "_kid", "_lifetime", "_private")

    def __init__(self, key: KeyPair, *, issuer: str, audience: str, lifetime: int) -> None:
        if key.private is None:
            raise ValueError("a signer needs a private key")
        self._kid, self._private = key.kid, key.private
        self._issuer, self._audience, self._lifetime = issuer, audience, lifetime

    @property
    def lifetime(self) -> int:
        """Return how many seconds an access token lives."""
        return self._lifetime

    def issue(
        self,
        *,
        subject_kind: str,
        subject_id: str,
        session_id: str,
        channel: str,
        auth_level: str,
        scopes: frozenset[str] = frozenset(),
        device_id: str | None = None,
        extra: Mapping[str, str] | None = None,
        now: dt.datetime,
    ) -> str:
        """Return a signed access token."""
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject_id,
            "typ": subject_kind,
            "sid": session_id,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._lifetime,
            "acr": auth_level,
            "chn": channel,
            "scope": " ".join(sorted(scopes)),
        }
        if device_id is not None:
            claims["dev"] = device_id
        if extra:
            claims["ext"] = dict(extra)
        return jwt.encode(
            claims,
            self._private,
            algorithm=ALGORITHM,
            headers={"kid": self._kid, "typ": TOKEN_TYPE},
        )


class TokenVerifier:
    """Verifies access tokens against the public keys and the revoked sessions it holds."""

    def __init__(self, *, issuer: str, audience: str) -> None:
        self._issuer, self._audience = issuer, audience
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked: set[str] = set()
        self._verified: dict[str, AccessClaims] = {}

    def set_keys(self, keys: list[KeyPair]) -> None:
        """Replace the keys tokens may be signed with."""
        self._keys = {key.kid: key.public for key in keys}
        self._verified.clear()

    def knows(self, kid: str) -> bool:
        """Tell whether ``kid`` is one of the keys held."""
        return kid in self._keys

    def revoke(self, session_ids: list[str]) -> None:
        """Refuse, from now on, every token of these sessions."""
        self._revoked.update(session_ids)

    def replace_revocations(self, session_ids: list[str]) -> None:
        """Hold exactly these revoked sessions (those whose tokens may still be alive)."""
        self._revoked = set(session_ids)

    def is_revoked(self, session_id: str) -> bool:
        """Tell whether the session was revoked."""
        return session_id in self._revoked

    @staticmethod
    def key_id(token: str) -> str | None:
        """Return the token's key id without verifying anything, or None if unreadable."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        return kid if isinstance(kid, str) else None

    def verify(self, token: str, *, now: float | None = None) -> AccessClaims:
        """Return the claims of a valid, unrevoked access token.

        Raises:
            InvalidToken: forged, expired, not yet valid, wrong algorithm, type, issuer or
                audience, unknown key, or its session revoked.
        """
        at = time.time() if now is None else now
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token, at)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = claims
        elif claims.expires_at + _LEEWAY_SECONDS <= at:
            del self._verified[token]
            raise InvalidToken("expired")
        if claims.session_id in self._revoked:
            raise InvalidToken("session revoked")
        return claims

    def _check(self, token: str, now: float) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid", ""))
            if key is None:
                raise InvalidToken("unknown key id")
            if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
                raise InvalidToken("wrong algorithm or token type")
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(type(error).__name__) from None
        if payload["exp"] + _LEEWAY_SECONDS <= now:  # PyJWT checks against its own clock
            raise InvalidToken("expired")
        try:
            extra = payload.get("ext") or {}
            return AccessClaims(
                subject_kind=_text(payload["typ"]),
                subject_id=_text(payload["sub"]),
                session_id=_text(payload["sid"]),
                channel=_text(payload["chn"]),
                auth_level=_text(payload["acr"]),
                scopes=frozenset(_text(payload.get("scope", "")).split()),
                device_id=_text(payload["dev"]) if "dev" in payload else None,
                expires_at=int(payload["exp"]),
                extra={str(k): _text(v) for k, v in dict(extra).items()},
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("claims missing or malformed") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
