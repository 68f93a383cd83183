"""The kernel's authorization gate: auth level and scopes, checked before any step runs."""

from __future__ import annotations

from collections.abc import Callable

from channelhub.kernel.catalog.compiled import CompiledService
from channelhub.kernel.errors import AuthLevelInsufficient, Forbidden, Unauthenticated
from channelhub.kernel.model import Principal, PrincipalKind

__all__ = ["Authorizer", "authorize"]

#: The hook the security center may replace; it raises to refuse.
Authorizer = Callable[[CompiledService, Principal], None]


def authorize(service: CompiledService, principal: Principal) -> None:
    """Refuse a caller whose authentication is weaker, or whose scopes are fewer, than required.

    Raises:
        Unauthenticated: the service needs a login and the caller is anonymous.
        AuthLevelInsufficient: the caller logged in, but not strongly enough.
        Forbidden: a required scope is missing.
    """
    need = service.definition.auth
    if need.level.rank > principal.auth_level.rank:
        if principal.kind is PrincipalKind.ANONYMOUS:
            raise Unauthenticated(f"{service.id} requires a login")
        raise AuthLevelInsufficient(
            f"{service.id} requires {need.level.value} authentication",
            details={"required": need.level.value},
        )
    missing = sorted(set(need.scopes) - principal.scopes)
    if missing:
        raise Forbidden(
            f"{service.id} requires scope {', '.join(missing)}", details={"scopes": missing}
        )
