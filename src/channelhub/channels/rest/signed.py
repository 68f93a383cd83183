"""A partner app's signed request, as the open API and the interbank channel authenticate
their callers alike."""

from __future__ import annotations

from starlette.requests import Request

from channelhub.channels.rest.api import Refused
from channelhub.kernel import Principal
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.quotas import Quotas
from channelhub.security.partners import SignedRequest, partner_principal
from channelhub.security.service import SecurityCenter

__all__ = ["bearer_token", "signed_partner"]

#: Longer than any token this platform issues; a longer header is refused unread.
_MAX_TOKEN_LENGTH = 4096


def bearer_token(request: Request, whose: str) -> str:
    """Return the request's bearer token.

    Raises:
        Refused: TOKEN_INVALID, naming ``whose`` token is wanted ("the app's").
    """
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    bearer = bearer.strip()
    if scheme.lower() != "bearer" or not bearer or len(bearer) > _MAX_TOKEN_LENGTH:
        raise Refused("TOKEN_INVALID", f"send {whose} access token as a bearer token")
    return bearer


async def signed_partner(
    request: Request, body: bytes, bearer: str, *, consent_id: str | None
) -> Principal:
    """Authenticate a partner app's request: its token, its signature over the request (the
    security center checks time, nonce and address), then its quota, taken once the app is
    known so that nobody can spend another app's.

    Raises:
        Refused: with the security center's code, or RATE_LIMITED with ``retry_after``.
    """
    signed = SignedRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        body=body,
        client_id=request.headers.get("x-client-id"),
        timestamp=request.headers.get("x-timestamp"),
        nonce=request.headers.get("x-nonce"),
        signature=request.headers.get("x-signature"),
        source_address=request.client.host if request.client else None,
        consent_id=consent_id,
    )
    security: SecurityCenter = request.app.state.security
    try:
        principal = await partner_principal(security, bearer, signed)
    except ChannelhubError as error:
        raise Refused(error.code, error.message) from None
    quotas: Quotas | None = request.app.state.runtime.partner_quotas
    if quotas is not None and (wait := await quotas.take(str(principal.id))) is not None:
        raise Refused(
            "RATE_LIMITED",
            f"this app may make {quotas.per_minute} requests a minute",
            retry_after=wait,
        )
    return principal
