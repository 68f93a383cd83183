"""The demo bank's fixed reference data: branches, staff, products, and named customers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BRANCHES",
    "CURRENCIES",
    "DEMO_CUSTOMERS",
    "PRODUCTS",
    "STAFF",
    "DemoAccount",
    "DemoCustomer",
    "demo_password",
]

#: The currencies the demo bank keeps general-ledger accounts in.
CURRENCIES = ("CNY", "USD")


def demo_password(username: str) -> str:
    """Return a demo identity's password: ``<username>-Demo-2026``."""
    return f"{username}-Demo-2026"


#: (code, name, city)
BRANCHES = (
    ("0101", "Head Office", "Shanghai"),
    ("0102", "Pudong Branch", "Shanghai"),
    ("0201", "Beijing Branch", "Beijing"),
)

#: (username, name, role, branch)
STAFF = (
    ("teller1", "Li Na", "teller", "0101"),
    ("teller2", "Zhao Lei", "teller", "0102"),
    ("super1", "Wang Fang", "supervisor", "0101"),
    ("operator1", "Chen Jie", "operator", "0101"),
    ("admin", "Zhou Min", "admin", "0101"),
    ("auditor1", "Sun Hui", "auditor", "0101"),
)

_ALWAYS = dt.date(2024, 1, 1)
_EVERYONE: dict[str, Any] = {}
_PREMIER = {"segments": ["premier", "private"], "min_kyc_level": 2}


def _product(
    code: str, type_: str, name: str, currency: str, parameters: dict[str, Any], **eligibility: Any
) -> dict[str, Any]:
    return {
        "code": code,
        "type": type_,
        "name": name,
        "currency": currency,
        "status": "active",
        "valid_from": _ALWAYS,
        "valid_to": None,
        "parameters": parameters,
        "eligibility": eligibility or _EVERYONE,
    }


PRODUCTS: tuple[dict[str, Any], ...] = (
    _product(
        "CUR-CNY",
        "current",
        "Everyday Current Account (CNY)",
        "CNY",
        {
            "interest_rate_bps": 10,
            "fees": {
                "transfer.internal": {"rate_bps": 10, "minimum": "2.00", "maximum": "50.00"},
                "transfer.interbank": {"rate_bps": 10, "minimum": "5.00", "maximum": "100.00"},
            },
        },
    ),
    _product(
        "CUR-CNY-PREMIER",
        "current",
        "Premier Current Account (CNY)",
        "CNY",
        {"interest_rate_bps": 20, "overdraft_allowed": True, "overdraft_limit": "20000.00"},
        **_PREMIER,
    ),
    _product(
        "CUR-USD",
        "current",
        "Current Account (USD)",
        "USD",
        {"fees": {"transfer.internal": {"fixed": "1.00"}}},
        min_kyc_level=2,
    ),
    _product("SAV-CNY", "savings", "Savings Account (CNY)", "CNY", {"interest_rate_bps": 35}),
    _product(
        "SAV-USD",
        "savings",
        "Savings Account (USD)",
        "USD",
        {"interest_rate_bps": 50, "fees": {"transfer.internal": {"fixed": "1.00"}}},
        min_kyc_level=2,
    ),
    _product(
        "TD-CNY-3M",
        "term_deposit",
        "Term Deposit 3 Months (CNY)",
        "CNY",
        {
            "interest_rate_bps": 125,
            "term_months": 3,
            "early_withdrawal_rate_bps": 35,
            "minimum_amount": "1000.00",
        },
    ),
    _product(
        "TD-CNY-12M",
        "term_deposit",
        "Term Deposit 12 Months (CNY)",
        "CNY",
        {
            "interest_rate_bps": 175,
            "term_months": 12,
            "early_withdrawal_rate_bps": 35,
            "minimum_amount": "1000.00",
        },
    ),
    _product(
        "TD-USD-6M",
        "term_deposit",
        "Term Deposit 6 Months (USD)",
        "USD",
        {
            "interest_rate_bps": 400,
            "term_months": 6,
            "early_withdrawal_rate_bps": 50,
            "minimum_amount": "500.00",
        },
        min_kyc_level=2,
    ),
    _product(
        "LOAN-CNY-PERSONAL",
        "loan",
        "Personal Loan (CNY)",
        "CNY",
        {"interest_rate_bps": 435, "term_months": 36},
        customer_kinds=["person"],
        min_kyc_level=2,
    ),
    _product("CARD-DEBIT-CNY", "debit_card", "UnionPay Debit Card", "CNY", {}),
)


@dataclass(frozen=True)
class DemoAccount:
    """An account a demo customer holds, with the balance it shows on a fresh demo."""

    product: str
    balance: str
    history: bool = False
    card: bool = False


@dataclass(frozen=True)
class DemoCustomer:
    """A named demo customer and its users."""

    username: str
    name: str
    kind: str
    id_type: str
    id_number: str
    phone: str
    email: str
    segment: str
    kyc_level: int
    branch: str
    accounts: tuple[DemoAccount, ...]
    operators: tuple[str, ...] = field(default=())


DEMO_CUSTOMERS = (
    DemoCustomer(
        "alice",
        "Alice Zhang",
        "person",
        "resident_id",
        "310101199001011234",
        "+8613800000001",
        "alice@example.com",
        "premier",
        3,
        "0101",
        (
            DemoAccount("CUR-CNY", "50000.00", history=True, card=True),
            DemoAccount("SAV-USD", "8000.00"),
        ),
    ),
    DemoCustomer(
        "bob",
        "Bob Li",
        "person",
        "resident_id",
        "110101198505054321",
        "+8613800000002",
        "bob@example.com",
        "retail",
        2,
        "0102",
        (
            DemoAccount("CUR-CNY", "50000.00", history=True, card=True),
            DemoAccount("SAV-USD", "1200.00"),
        ),
    ),
    DemoCustomer(
        "acme",
        "Acme Trading Co., Ltd.",
        "company",
        "business_licence",
        "91310000MA1FL0000X",
        "+862150000000",
        "treasury@acme.example.com",
        "corporate",
        3,
        "0101",
        (DemoAccount("CUR-CNY", "1000000.00"),),
        operators=("acme.op1", "acme.op2"),
    ),
)
