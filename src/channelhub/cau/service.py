"""The center's operations, for steps, the seeder and other domains. Nothing here commits.

Object-level authorization lives here, next to the reads: a customer principal reaches only
the accounts and cards of the customer it acts for, whatever service asks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channelhub.cau import repository
from channelhub.cau.errors import (
    AccountInactive,
    AccountNotFound,
    CardBlocked,
    CardExpired,
    CardLost,
    CardNotFound,
    CardStatusInvalid,
    NotYours,
    PinInvalid,
    PinTriesExceeded,
    ProductNotEligible,
    ProductNotFound,
    UnknownCard,
)
from channelhub.cau.numbers import (
    account_number,
    customer_number,
    mask_email,
    mask_id_number,
    mask_phone,
)
from channelhub.cau.rules import CustomerFacts, ProductFacts, check_eligible, floor_of
from channelhub.cau.schemas import Eligibility, ProductParameters
from channelhub.kernel.errors import Forbidden, Unauthenticated
from channelhub.kernel.model import AuthLevel, Principal, PrincipalKind
from channelhub.kit.ids import new_id
from channelhub.kit.logging import get_logger
from channelhub.kit.money import CurrencyMismatch, Money
from channelhub.ledger import service as ledger
from channelhub.ledger.schemas import Balance

__all__ = [
    "CUSTOMER_SCOPES",
    "MAX_PIN_FAILURES",
    "CardHolder",
    "CustomerStanding",
    "LoginIdentity",
    "account_facts",
    "account_view",
    "acting_customer_id",
    "authenticate_card",
    "bind_device",
    "card_view",
    "change_card_status",
    "close_account",
    "consented",
    "create_customer",
    "customer_account_numbers",
    "customer_accounts",
    "customer_by_document",
    "customer_card_ids",
    "customer_principal",
    "customer_profile",
    "customer_standing",
    "device_bound",
    "ensure_owned",
    "login_identity",
    "login_identity_by_id",
    "open_account",
    "owned_account",
    "pan_fingerprint",
    "pin_verifier",
    "product_or_fail",
    "product_view",
    "rate_text",
    "require_active",
    "restore_account_status",
    "set_customer_status",
]

log = get_logger(__name__)

#: Which account statuses may send and receive money.
USABLE = frozenset({"active"})

#: What a customer's own login may do. A partner app acting for the customer gets only what
#: the customer consented to, out of these.
CUSTOMER_SCOPES = frozenset({"accounts:read", "statements:read"})


#: Who may act for a customer, once the channel established which customer: the customer's
#: own login, a partner app within the customer's consent, a teller serving a customer who is
#: present and identified, a terminal where the customer's card and PIN were verified.
_ACTING_KINDS = frozenset(
    {PrincipalKind.CUSTOMER, PrincipalKind.PARTNER, PrincipalKind.STAFF, PrincipalKind.TERMINAL}
)


def acting_customer_id(principal: Principal) -> uuid.UUID:
    """Return the customer a principal acts for.

    Only a channel sets the ``customer_id`` attribute: the REST channel from the customer's
    token or the partner's consent, the teller desk after identifying the customer present,
    the ISO 8583 channel after verifying the card's PIN. A staff token on its own acts for
    nobody.

    Raises:
        Forbidden: the principal acts for no customer.
    """
    customer = principal.attributes.get("customer_id")
    acting = principal.kind in _ACTING_KINDS
    if not acting or not customer:
        raise Forbidden("this service is for customers", details={"principal": principal.kind})
    return uuid.UUID(customer)


def consented(principal: Principal, number: str) -> bool:
    """Tell whether the principal may see this account of its customer: always for the
    customer's own login, only the consented accounts for a partner app."""
    if principal.kind is not PrincipalKind.PARTNER:
        return True
    return number in principal.attributes.get("consent_accounts", "").split(",")


async def owned_account(session: AsyncSession, principal: Principal, number: str) -> Any:
    """Return an account of the customer ``principal`` acts for.

    Raises:
        AccountNotFound: no such account.
        NotYours: it is another customer's; the attempt is logged for the security team.
    """
    customer_id = acting_customer_id(principal)
    row = await repository.account(session, number)
    if row is None:
        raise AccountNotFound("no such account", details={"account": number})
    ensure_owned(principal, customer_id, row.customer_id, "account", number)
    return row


def ensure_owned(
    principal: Principal, customer_id: uuid.UUID, owner: uuid.UUID, kind: str, key: str
) -> None:
    """Refuse an object of another customer, and log the attempt for the security team.

    Raises:
        NotYours: naming the object.
    """
    if owner != customer_id or (kind == "account" and not consented(principal, key)):
        log.warning("object_access_denied", object=kind, principal=principal.label)
        raise NotYours(f"the {kind} is not one of yours", details={kind: key})


def require_active(row: Any, *, currency: str | None = None) -> None:
    """Refuse an account that may not move money, or one in another currency.

    Raises:
        AccountInactive: frozen, dormant or closed.
        CurrencyMismatch: the account holds another currency.
    """
    if row.status not in USABLE:
        raise AccountInactive(
            f"the account is {row.status}", details={"account": row.number, "status": row.status}
        )
    if currency is not None and row.currency != currency:
        raise CurrencyMismatch(
            f"the account holds {row.currency}, not {currency}",
            details={"account": row.number, "currency": row.currency},
        )


def _decimal(minor: int, currency: str) -> str:
    return Money(minor, currency).to_decimal_string()


def account_view(row: Any, balance: Balance | None) -> dict[str, Any]:
    """Return an account as the wire shows it."""
    ledger_minor = balance.ledger_minor if balance else 0
    available = balance.available_minor if balance else 0
    return {
        "number": row.number,
        "currency": row.currency,
        "product": row.product_code,
        "product_name": row.product_name,
        "type": row.product_type,
        "status": row.status,
        "nickname": row.nickname,
        "available_balance": _decimal(available, row.currency),
        "ledger_balance": _decimal(ledger_minor, row.currency),
    }


async def customer_accounts(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    """Return every account of the acting customer with its balances."""
    rows = await repository.accounts_of_customer(session, acting_customer_id(principal))
    rows = [row for row in rows if consented(principal, row.number)]
    balances = await ledger.balances(session, [row.number for row in rows])
    return [account_view(row, balances.get(row.number)) for row in rows]


async def customer_profile(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    """Return the acting customer's profile, identity data masked."""
    row = await repository.customer(session, acting_customer_id(principal))
    if row is None:
        raise Forbidden("the customer no longer exists")
    return {
        "number": row.number,
        "kind": row.kind,
        "name": row.name,
        "id_type": row.id_type,
        "id_number": mask_id_number(row.id_number),
        "phone": mask_phone(row.phone),
        "email": mask_email(row.email),
        "kyc_level": row.kyc_level,
        "segment": row.segment,
        "risk_rating": row.risk_rating,
        "status": row.status,
        "home_branch": row.home_branch,
        "opened_on": row.opened_on.isoformat(),
    }


def product_view(row: Any) -> dict[str, Any]:
    """Return a product as the wire shows it."""
    parameters = ProductParameters.model_validate(row.parameters)
    return {
        "code": row.code,
        "type": row.type,
        "name": row.name,
        "currency": row.currency,
        "status": row.status,
        "valid_from": row.valid_from.isoformat(),
        "valid_to": row.valid_to.isoformat() if row.valid_to else None,
        "interest_rate": rate_text(parameters.interest_rate_bps),
        "term_months": parameters.term_months,
        "minimum_balance": parameters.minimum_balance,
        "minimum_amount": parameters.minimum_amount,
        "overdraft_allowed": parameters.overdraft_allowed,
        "overdraft_limit": parameters.overdraft_limit,
        "fees": {name: rule.model_dump() for name, rule in parameters.fees.items()},
        "eligibility": Eligibility.model_validate(row.eligibility).model_dump(mode="json"),
    }


def rate_text(bps: int) -> str:
    """Show basis points as a percentage string: 225 -> "2.25"."""
    return f"{bps // 100}.{bps % 100:02d}"


async def product_or_fail(session: AsyncSession, code: str) -> Any:
    """Return a product.

    Raises:
        ProductNotFound: no product has this code.
    """
    row = await repository.product(session, code)
    if row is None:
        raise ProductNotFound("no such product", details={"product": code})
    return row


async def open_account(
    session: AsyncSession,
    principal: Principal,
    *,
    product_code: str,
    now: dt.datetime,
    today: dt.date,
    nickname: str | None = None,
    product_types: tuple[str, ...] = ("current", "savings"),
    term: tuple[int, dt.date, str] | None = None,
) -> tuple[str, Any]:
    """Open an account of an eligible product for the acting customer; return its number
    and the product. ``term`` (rate, maturity, settlement account) makes a term deposit.

    Raises:
        ProductNotFound, ProductNotEligible: the product does not exist or is not open to
            this customer, or is not of ``product_types``.
    """
    customer_id = acting_customer_id(principal)
    customer = await repository.customer(session, customer_id)
    product = await product_or_fail(session, product_code)
    if customer is None or customer.status != "active":
        raise Forbidden("the customer may not open accounts")
    facts = ProductFacts(
        product.code,
        product.status,
        product.valid_from,
        product.valid_to,
        Eligibility.model_validate(product.eligibility),
    )
    check_eligible(facts, CustomerFacts(customer.kind, customer.segment, customer.kyc_level), today)
    if product.type not in product_types:
        raise ProductNotEligible(
            f"a {product.type} product cannot be opened by this service",
            details={"product": product.code, "reason": "type"},
        )
    parameters = ProductParameters.model_validate(product.parameters)
    number = account_number(customer.home_branch, await repository.next_serial(session, "account"))
    rate, maturity, settlement = term if term else (None, None, None)
    await repository.insert(
        session,
        "accounts",
        [
            {
                "id": new_id(),
                "number": number,
                "customer_id": customer_id,
                "product_code": product.code,
                "currency": product.currency,
                "branch_code": customer.home_branch,
                "nickname": nickname,
                "status": "active",
                "opened_on": today,
                "closed_on": None,
                "interest_rate_bps": rate,
                "maturity_on": maturity,
                "settlement_account": settlement,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    await ledger.open_account(
        session,
        code=number,
        currency=product.currency,
        floor_minor=floor_of(parameters, product.currency),
        now=now,
    )
    return number, product


async def restore_account_status(
    session: AsyncSession,
    number: str,
    *,
    current: str,
    previous: str,
    now: dt.datetime,
    today: dt.date,
) -> None:
    """Undo a status change (a compensation); ``today`` is the bank's business date."""
    closed_on = today if previous == "closed" else None
    await repository.set_account_status(
        session, number, expected=current, status=previous, closed_on=closed_on, now=now
    )


async def customer_by_document(session: AsyncSession, id_type: str, id_number: str) -> Any | None:
    """Return the customer (id, number, name, status) holding an identity document."""
    return await repository.customer_by_document(session, id_type, id_number)


async def create_customer(
    session: AsyncSession, values: Mapping[str, Any], *, now: dt.datetime, today: dt.date
) -> tuple[uuid.UUID, str]:
    """Make a new active customer from KYC data (name, kind, id_type, id_number, phone,
    email, kyc_level, segment, risk_rating, home_branch); return its id and customer number
    (with its check digit). The caller checked that the document is not a customer's yet."""
    customer_id = new_id()
    number = customer_number(await repository.next_serial(session, "customer"))
    row = {
        **values,
        "id": customer_id,
        "number": number,
        "status": "active",
        "opened_on": today,
        "created_at": now,
        "updated_at": now,
    }
    await repository.insert(session, "customers", [row])
    return customer_id, number


async def set_customer_status(
    session: AsyncSession, customer_id: uuid.UUID, *, status: str, now: dt.datetime
) -> None:
    """Change a customer's status (a failed onboarding closes the customer it made)."""
    await repository.set_customer_status(session, customer_id, status=status, now=now)


async def close_account(
    session: AsyncSession, row: Any, *, now: dt.datetime, today: dt.date
) -> int:
    """Close an active account (the caller checked it holds nothing) and block every card
    drawing on it; return how many cards were blocked.

    Raises:
        AccountInactive: the account stopped being active meanwhile.
    """
    closed = await repository.set_account_status(
        session, row.number, expected="active", status="closed", closed_on=today, now=now
    )
    if not closed:
        raise AccountInactive("the account is no longer active", details={"account": row.number})
    return await repository.block_cards_of_account(session, row.id, now=now)


def card_view(row: Any) -> dict[str, Any]:
    """Return a card as the wire shows it: never its full number."""
    return {
        "id": str(row.id),
        "number": row.pan_masked,
        "account": row.account_number,
        "expiry": row.expiry,
        "status": row.status,
        "product": row.product_code,
    }


async def change_card_status(
    session: AsyncSession,
    principal: Principal,
    *,
    card_id: str,
    allowed_from: tuple[str, ...],
    status: str,
    now: dt.datetime,
) -> str:
    """Move one of the acting customer's cards to ``status``; return its former status.

    Raises:
        CardNotFound: no such card (a malformed id included).
        NotYours: another customer's card.
        CardStatusInvalid: the card is not in one of ``allowed_from``.
    """
    customer_id = acting_customer_id(principal)
    try:
        key = uuid.UUID(card_id)
    except ValueError:
        raise CardNotFound("no such card", details={"card": card_id[:64]}) from None
    card = await repository.card_for_update(session, key)
    if card is None:
        raise CardNotFound("no such card", details={"card": card_id})
    ensure_owned(principal, customer_id, card.customer_id, "card", card_id)
    if card.status not in allowed_from:
        raise CardStatusInvalid(
            f"the card is {card.status}", details={"card": card_id, "status": card.status}
        )
    await repository.set_card_status(session, key, expected=card.status, status=status, now=now)
    return str(card.status)


def pan_fingerprint(key: bytes, pan: str) -> str:
    """Return the keyed hash a card number is found by; the number itself is never stored."""
    return hmac.new(key, b"pan:" + pan.encode(), hashlib.sha256).hexdigest()


def pin_verifier(key: bytes, pan: str, pin: str) -> str:
    """Return the one-way value a PIN is checked against, bound to its card."""
    return hmac.new(key, f"pin:{pan}:{pin}".encode(), hashlib.sha256).hexdigest()


def verify_pin(key: bytes, pan: str, pin: str, verifier: str) -> bool:
    """Tell, in constant time, whether ``pin`` is the card's PIN."""
    return hmac.compare_digest(pin_verifier(key, pan, pin), verifier)


#: Wrong PINs in a row that block a card.
MAX_PIN_FAILURES = 3


@dataclass(frozen=True, slots=True)
class CardHolder:
    """A card a terminal read whose PIN was verified: whose it is and which account it draws."""

    card_id: uuid.UUID
    customer_id: uuid.UUID
    account: str
    currency: str


async def authenticate_card(
    session: AsyncSession,
    *,
    key: bytes,
    pan: str,
    pin_matches: Callable[[Callable[[str], bool]], bool],
    now: dt.datetime,
    today: dt.date,
) -> CardHolder:
    """Verify a card presented at a terminal and its PIN; count a wrong PIN, blocking the card
    at the third in a row, and forget them after a right one. ``pin_matches`` is the security
    module's check of the PIN block: it is handed the comparison with the card's verifier, so
    the clear PIN stays inside the module. The caller commits, whatever the outcome.

    Raises:
        UnknownCard, CardLost, CardBlocked, CardExpired: the card may not be used.
        PinInvalid: a wrong PIN. PinTriesExceeded: the wrong PIN that blocked the card, and any
            use of a card blocked that way.
    """
    card = await repository.card_by_pan_hash(session, pan_fingerprint(key, pan))
    if card is None:
        raise UnknownCard("no card has this number")
    if card.status == "lost":
        raise CardLost("the card is reported lost")
    if card.status == "blocked":
        if card.pin_failures >= MAX_PIN_FAILURES:
            raise PinTriesExceeded("the card is blocked after too many wrong PINs")
        raise CardBlocked("the card is blocked")
    if card.expiry < today.strftime("%y%m"):
        raise CardExpired("the card has expired", details={"expiry": card.expiry})
    if not pin_matches(lambda pin: verify_pin(key, pan, pin, card.pin_verifier)):
        failures, status = await repository.count_pin_failure(
            session, card.id, max_failures=MAX_PIN_FAILURES, now=now
        )
        log.info("card_pin_wrong", card=str(card.id), failures=failures)
        if status == "blocked":
            raise PinTriesExceeded("too many wrong PINs: the card is now blocked")
        raise PinInvalid("the PIN is wrong", details={"tries_left": MAX_PIN_FAILURES - failures})
    if card.pin_failures:
        await repository.reset_pin_failures(session, card.id, now)
    return CardHolder(
        uuid.UUID(str(card.id)),
        uuid.UUID(str(card.customer_id)),
        str(card.account_number),
        str(card.account_currency),
    )


async def customer_principal(
    session: AsyncSession, username: str, *, auth_level: AuthLevel
) -> Principal:
    """Return the principal of an active customer user, as the security center vouches for it
    after a login at ``auth_level``.

    Raises:
        Unauthenticated: no active user has this name (the same answer either way).
    """
    user = await repository.user_by_username(session, username)
    if user is None or user.status != "active":
        raise Unauthenticated("unknown or inactive user")
    return Principal(
        kind=PrincipalKind.CUSTOMER,
        id=str(user.id),
        auth_level=auth_level,
        scopes=CUSTOMER_SCOPES,
        attributes={"customer_id": str(user.customer_id), "username": user.username},
    )


@dataclass(frozen=True, slots=True)
class LoginIdentity:
    """Who a username belongs to, as the security center needs it to log them in."""

    kind: str  # "customer" (a customer user) or "staff"
    id: uuid.UUID
    username: str
    active: bool
    #: The channels a customer user may log in through; staff use the teller desk and console.
    channels: frozenset[str]
    customer_id: uuid.UUID | None = None
    role: str | None = None
    branch_code: str | None = None


async def login_identity(session: AsyncSession, kind: str, username: str) -> LoginIdentity | None:
    """Return the customer user (``kind="customer"``) or staff member named ``username``."""
    if kind == "customer":
        return _user_identity(await repository.user_by_username(session, username))
    return _staff_identity(await repository.staff_by_username(session, username))


async def login_identity_by_id(
    session: AsyncSession, kind: str, subject_id: uuid.UUID
) -> LoginIdentity | None:
    """Return the customer user or staff member with this id."""
    if kind == "customer":
        return _user_identity(await repository.user_by_id(session, subject_id))
    return _staff_identity(await repository.staff_by_id(session, subject_id))


def _user_identity(user: Any | None) -> LoginIdentity | None:
    if user is None:
        return None
    return LoginIdentity(
        kind="customer",
        id=user.id,
        username=user.username,
        active=user.status == "active",
        channels=frozenset(user.channels),
        customer_id=user.customer_id,
        role=user.role,
    )


def _staff_identity(staff: Any | None) -> LoginIdentity | None:
    if staff is None:
        return None
    return LoginIdentity(
        kind="staff",
        id=staff.id,
        username=staff.username,
        active=staff.status == "active",
        channels=frozenset({"teller", "console"}),
        role=staff.role,
        branch_code=staff.branch_code,
    )


async def device_bound(session: AsyncSession, user_id: uuid.UUID, device_id: str) -> bool:
    """Tell whether the user bound this device (after a second factor) and has not revoked it."""
    row = await repository.device(session, user_id, device_id)
    return row is not None and row.status == "active"


async def bind_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: str, *, now: dt.datetime
) -> None:
    """Bind a device to a user, after the user proved a second factor from it."""
    await repository.bind_device(session, user_id, device_id, name=device_id[:200], now=now)


@dataclass(frozen=True, slots=True)
class CustomerStanding:
    """What limits and risk rules know of a customer."""

    id: str
    segment: str
    kyc_level: int
    risk_rating: str
    status: str
    opened_on: dt.date


async def customer_standing(session: AsyncSession, customer_id: str) -> CustomerStanding | None:
    """Return a customer's segment, KYC level, risk rating, status and opening date."""
    try:
        key = uuid.UUID(customer_id)
    except ValueError:
        return None
    row = await repository.customer(session, key)
    if row is None:
        return None
    return CustomerStanding(
        id=customer_id,
        segment=row.segment,
        kyc_level=row.kyc_level,
        risk_rating=row.risk_rating,
        status=row.status,
        opened_on=row.opened_on,
    )


async def account_facts(session: AsyncSession, number: str) -> tuple[dt.date, str] | None:
    """Return when an account was opened and its holder's name (risk: account age, and the
    beneficiary's name against the lists)."""
    row = await repository.account(session, number)
    if row is None:
        return None
    holder = await repository.customer(session, row.customer_id)
    return row.opened_on, holder.name if holder is not None else ""


async def customer_account_numbers(session: AsyncSession, customer_id: str) -> list[str]:
    """Return the numbers of a customer's accounts (their limits are the customer's too)."""
    rows = await repository.accounts_of_customer(session, uuid.UUID(customer_id))
    return [row.number for row in rows]


async def customer_card_ids(session: AsyncSession, customer_id: str) -> list[str]:
    """Return the ids of a customer's cards."""
    rows = await repository.cards_of_customer(session, uuid.UUID(customer_id))
    return [str(row.id) for row in rows]
