"""Staff roles and what each may do. Pure: permissions become token scopes at login, and the
kernel and the management routes check them there."""

from __future__ import annotations

from channelhub.kernel.model import Principal, PrincipalKind

__all__ = ["ROLE_PERMISSIONS", "has_permission", "permissions_of"]

_TELLER = frozenset(
    {
        "teller.transact",
        "customer.read",
        "customer.onboard",
        "card.block",
        "customer.password.reset",
    }
)

#: role -> permissions. A supervisor can do what a teller does and approve it; an auditor
#: reads and changes nothing.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "teller": _TELLER,
    "supervisor": _TELLER
    | {
        "approval.read",
        "approval.password_reset",
        "approval.teller_override",
        "approval.limit_change",
        "approval.risk_list",
        "limit.read",
        "risk.read",
        "risk.review",
    },
    "operator": frozenset(
        {
            "catalog.publish",
            "parameter.change",
            "approval.read",
            "limit.read",
            "limit.change",
            "risk.read",
            "risk.rules.manage",
            "risk.list.change",
        }
    ),
    "admin": frozenset(
        {
            "customer.read",
            "customer.password.reset",
            "staff.manage",
            "limit.change",
            "partner.manage",
            "terminal.manage",
            "approval.read",
            "approval.password_reset",
            "approval.limit_change",
            "approval.risk_list",
            "limit.read",
            "risk.read",
            "risk.rules.manage",
        }
    ),
    "auditor": frozenset(
        {"audit.read", "journal.read", "approval.read", "customer.read", "limit.read", "risk.read"}
    ),
}


def permissions_of(role: str | None) -> frozenset[str]:
    """Return a role's permissions (none for an unknown role)."""
    return ROLE_PERMISSIONS.get(role or "", frozenset())


def has_permission(principal: Principal, permission: str) -> bool:
    """Tell whether ``principal`` is a staff member holding ``permission``."""
    return principal.kind is PrincipalKind.STAFF and permission in principal.scopes
