"""``GET /api/v1/accounts/{number}/statement.camt053`` over a real socket: alice's statement as
camt.053.001.08 XML, the same balances and entries as ``account.statement``, across pages; bob's
account, a missing login and bad parameters refused as JSON envelopes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import aiohttp
import pytest
from lxml import etree

from channelhub.channels.iso20022.camt053 import NAMESPACE
from channelhub.channels.rest import api as rest_api
from channelhub.kit.clock import utc_now
from tests.security.conftest import SecureNode, call, login, secure_node

__all__ = ["secure_node"]  # the fixture, imported for this module

pytestmark = pytest.mark.asyncio

NS = {"c": NAMESPACE}


async def _token(http: aiohttp.ClientSession, node: SecureNode, who: str) -> str:
    status, body = await login(http, node, who, device=f"{who}-phone")
    assert status == 200, body
    return str(body["access_token"])


@pytest.mark.parametrize("page_size", [200, 7], ids=["one-page", "many-pages"])
async def test_a_statement_as_camt053_matches_the_service(
    secure_node: SecureNode,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    page_size: int,
) -> None:
    monkeypatch.setattr(rest_api, "_CAMT_PAGE_SIZE", page_size)
    token = await _token(http, secure_node, "alice")
    number = secure_node.accounts["alice.CNY"]
    since = (utc_now().date() - dt.timedelta(days=200)).isoformat()
    path = f"/api/v1/accounts/{number}/statement.camt053?from={since}"
    async with http.get(secure_node.url(path), headers={"Authorization": f"Bearer {token}"}) as (
        answer
    ):
        assert answer.status == 200, await answer.text()
        assert answer.headers["Content-Type"].startswith("application/xml")
        document = etree.fromstring(await answer.read())

    # The same statement through the service, every page of it.
    entries: list[dict[str, object]] = []
    first: dict[str, object] = {}
    for page in range(1, 100):
        status, body = await call(
            http,
            secure_node,
            "account.statement",
            {"account": number, "from": since, "page": page, "page_size": 200},
            token,
        )
        assert status == 200, body
        data = body["data"]
        assert isinstance(data, dict)
        first = first or data
        entries += data["entries"]
        if not data["has_more"]:
            break

    assert document.tag == f"{{{NAMESPACE}}}Document"
    stmt = document.find("c:BkToCstmrStmt/c:Stmt", NS)
    assert stmt is not None
    assert stmt.findtext("c:Acct/c:Id/c:Othr/c:Id", namespaces=NS) == number
    assert stmt.findtext("c:Acct/c:Ccy", namespaces=NS) == "CNY"
    balances = {
        b.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=NS): _signed(b)
        for b in stmt.findall("c:Bal", NS)
    }
    assert balances == {
        "OPBD": Decimal(str(first["opening_balance"])),
        "CLBD": Decimal(str(first["closing_balance"])),
    }
    ntries = stmt.findall("c:Ntry", NS)
    assert len(entries) > 10  # months of demo history
    assert [_signed(n) for n in ntries] == [Decimal(str(e["amount"])) for e in entries]
    assert [n.findtext("c:NtryRef", namespaces=NS) for n in ntries] == [
        str(e["entry_id"]).replace("-", "") for e in entries
    ]
    assert stmt.findtext("c:TxsSummry/c:TtlNtries/c:NbOfNtries", namespaces=NS) == str(len(entries))
    # Opening balance plus the entries is the closing balance.
    assert balances["OPBD"] + sum(_signed(n) for n in ntries) == balances["CLBD"]


async def test_a_camt053_export_refuses_what_the_service_refuses(
    secure_node: SecureNode, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await _token(http, secure_node, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    mine, bobs = secure_node.accounts["alice.CNY"], secure_node.accounts["bob.CNY"]
    for path, headers, status, code in [
        (f"/api/v1/accounts/{bobs}/statement.camt053", auth, 403, "FORBIDDEN"),
        (f"/api/v1/accounts/{mine}/statement.camt053", {}, 401, "UNAUTHENTICATED"),
        (f"/api/v1/accounts/{mine}/statement.camt053?from=yesterday", auth, 400, None),
        (f"/api/v1/accounts/{mine}/statement.camt053?from=2026-02-30", auth, 400, None),
        (f"/api/v1/accounts/{mine}/statement.camt053?page=2", auth, 400, "VALIDATION_FAILED"),
        (f"/api/v1/accounts/{mine}/statement.camt053?from=2020-01-01", auth, 400, None),
        ("/api/v1/accounts/<x>/statement.camt053", auth, 400, "VALIDATION_FAILED"),
    ]:
        async with http.get(secure_node.url(path), headers=headers) as answer:
            body = await answer.json()
        assert answer.status == status, (path, body)
        assert body["status"] == "failed"
        if code is not None:
            assert body["code"] == code, (path, body)
    # More entries than an export carries: a clear refusal, asking for fewer days.
    monkeypatch.setattr(rest_api, "_CAMT_PAGE_SIZE", 2)
    monkeypatch.setattr(rest_api, "_CAMT_MAX_PAGES", 2)
    since = (utc_now().date() - dt.timedelta(days=200)).isoformat()
    path = f"/api/v1/accounts/{mine}/statement.camt053?from={since}"
    async with http.get(secure_node.url(path), headers=auth) as answer:
        body = await answer.json()
    assert (answer.status, body["code"]) == (400, "VALIDATION_FAILED")
    assert "fewer days" in body["message"]


def _signed(element: etree._Element) -> Decimal:
    amount = Decimal(element.findtext("c:Amt", namespaces=NS) or "nan")
    return -amount if element.findtext("c:CdtDbtInd", namespaces=NS) == "DBIT" else amount
