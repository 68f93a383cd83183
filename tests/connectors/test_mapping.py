"""Mappings: loading refuses a bad file up front; the core mappings round-trip; the code
table translates the core's result codes; amounts survive formatting exactly."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.connectors.base import BackendBadResponse
from channelhub.connectors.fixed import FixedClient
from channelhub.connectors.mapping import (
    MappedRefusal,
    Mapping,
    MappingError,
    MappingInputError,
    canonical_request,
    load_mapping,
    parse_mapping,
)
from channelhub.connectors.mapping.formats import FormatArgs, apply
from channelhub.connectors.simulators.core import CORE_FRAMING, CORE_LAYOUTS, CoreSimulator
from channelhub.kit.currencies import MINOR_UNITS
from channelhub.kit.ids import new_id
from channelhub.kit.money import MAX_MINOR, Money

MAPPINGS = Path(__file__).resolve().parents[2] / "src" / "channelhub" / "connectors" / "mappings"
LAYOUTS = MAPPINGS.parent / "simulators"
ZHANG, LI, WANG = "6217000000000001", "6217000000000002", "6217000000000003"
NOW = dt.datetime(2025, 3, 14, 1, 30, tzinfo=dt.UTC)
CALL_SECONDS = 10.0

GOOD = """
backend: core
operation: balance
protocol: fixed
layouts: {file: core_layouts.yaml, request: core.request, response: core.response}
request:
  txn_code: {value: BINQ}
  account: input.account
response:
  balance: {path: ledger_balance, format: amount_decimal, currency: currency}
result:
  field: result
  success: ["0000"]
  codes: {"0051": INSUFFICIENT_FUNDS}
"""


def balance() -> Mapping:
    return load_mapping(MAPPINGS / "core-balance.yaml")


def debit() -> Mapping:
    return load_mapping(MAPPINGS / "core-debit.yaml")


def canonical(txn_id: uuid.UUID | None = None, **payload: Any) -> dict[str, Any]:
    return canonical_request(payload, txn_id=txn_id or new_id(), now=NOW, channel="mobile")


def parse(text: str) -> Mapping:
    return parse_mapping(text, name="bad.yaml", base=LAYOUTS)


# --- loading --------------------------------------------------------------------------------


def test_a_good_mapping_loads() -> None:
    mapping = parse(GOOD)
    assert (mapping.backend, mapping.operation, mapping.idempotent) == ("core", "balance", False)
    assert mapping.request_layout == CORE_LAYOUTS["core.request"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (("input.account", "input.[account"), "request.account", "does not compile"),
        (("input.account", "input account"), "request.account", "does not compile"),
        (
            ("input.account", "{path: input.account, format: rot13}"),
            "request.account.format",
            "no formatter 'rot13'",
        ),
        (("INSUFFICIENT_FUNDS", "NO_SUCH_CODE"), "result.codes.0051", "not a canonical code"),
        (
            ("request: core.request", "request: core.nothing"),
            "layouts.request",
            "no layout 'core.nothing'",
        ),
        (("file: core_layouts.yaml", "file: missing.yaml"), "layouts.file", "missing.yaml"),
        (
            ("txn_code: {value: BINQ}", "txn_kode: {value: BINQ}"),
            "request.txn_kode",
            "no such field",
        ),
        (("field: result", "field: reslt"), "result.field", "no field 'reslt'"),
        (
            ("operation: balance", "operation: balance\nretries: 3"),
            "(file)",
            "unknown key(s) retries",
        ),
        (
            ('{"0051": INSUFFICIENT_FUNDS}', "{0051: INSUFFICIENT_FUNDS}"),
            "result.codes",
            "quote the back end's codes",
        ),
        (("{value: BINQ}", "{value: 7}"), "request.txn_code", "needs text"),
        (
            ("input.account", "{path: input.account, width: 4}"),
            "request.account.width",
            "no formatter of this field takes it",
        ),
        (
            ("input.account", "{path: input.account, format: amount_minor}"),
            "request.account",
            "needs currency",
        ),
        (
            ("currency: currency", 'currency: "currency.["'),
            "response.balance.currency",
            "does not compile",
        ),
    ],
)
def test_loading_refuses_a_bad_mapping_naming_file_and_field(
    change: tuple[str, str], field: str, words: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(MappingError) as caught:
        parse(GOOD.replace(old, new, 1))
    assert caught.value.file == "bad.yaml"
    assert caught.value.where == field
    assert words in caught.value.message
    assert caught.value.message.startswith(f"bad.yaml: {field}")


def test_a_bad_expression_is_refused_with_its_position() -> None:
    with pytest.raises(MappingError) as caught:
        parse(GOOD.replace("input.account", "input.[account", 1))
    assert caught.value.position == 14  # where the expression ends unfinished
    assert "at column 14" in caught.value.message
    with pytest.raises(MappingError) as caught:
        parse(GOOD.replace("input.account", "input account", 1))
    assert caught.value.position == 6


def test_a_number_field_refuses_text_at_load() -> None:
    text = GOOD.replace("account: input.account", "amount: {path: input.amount, format: upper}")
    with pytest.raises(MappingError, match=r"packed in 'core\.request': needs a whole number"):
        parse(text)


def test_loading_refuses_files_that_are_not_mappings(tmp_path: Path) -> None:
    for content in (b"- a list\n", b"backend: [unclosed\n", b"\xff\xfe", b""):
        file = tmp_path / "m.yaml"
        file.write_bytes(content)
        with pytest.raises(MappingError) as caught:
            load_mapping(file)
        assert caught.value.file == str(file)
    (tmp_path / "big.yaml").write_bytes(b"#" * 300_000)
    with pytest.raises(MappingError, match="larger than"):
        load_mapping(tmp_path / "big.yaml")
    with pytest.raises(MappingError, match=r"nowhere\.yaml"):
        load_mapping(tmp_path / "nowhere.yaml")


# --- the core mappings ----------------------------------------------------------------------


def test_the_balance_request_is_a_binq_record() -> None:
    mapping = balance()
    fields = mapping.request(canonical(account=ZHANG))
    assert fields == {"txn_code": "BINQ", "account": ZHANG}
    record = mapping.record(fields)
    assert len(record) == 83
    assert record[:4] == "BINQ".encode("cp037")


def test_the_balance_response_is_canonical() -> None:
    answer = {
        "txn_code": "BINQ", "result": "0000", "account": ZHANG, "currency": "CNY",
        "ledger_balance": 5_000_000, "available_balance": 4_999_999,
    }  # fmt: skip
    assert balance().response(answer) == {
        "number": ZHANG,
        "currency": "CNY",
        "ledger_balance": "50000.00",
        "available_balance": "49999.99",
    }


def test_the_debit_request_carries_minor_units_and_a_stable_reference() -> None:
    mapping = debit()
    txn_id = new_id()
    fields = mapping.request(canonical(txn_id, account=LI, amount="12.50", currency="CNY"))
    assert fields["txn_code"] == "DEBT"
    assert fields["amount"] == 1250
    reference = fields["reference"]
    assert len(reference) == 20
    again = mapping.request(canonical(txn_id, account=LI, amount="12.50", currency="CNY"))
    assert again["reference"] == reference  # an inquiry or reversal finds it again
    other = mapping.request(canonical(account=LI, amount="12.50", currency="CNY"))
    assert other["reference"] != reference


def test_references_of_many_transactions_are_unique() -> None:
    mapping = debit()
    references = {
        mapping.request(canonical(account=LI, amount="1.00", currency="CNY"))["reference"]
        for _ in range(5000)
    }
    assert len(references) == 5000


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"account": LI, "currency": "CNY"}, "amount", "VALIDATION_FAILED"),
        ({"account": LI, "amount": 12.5, "currency": "CNY"}, "amount", "VALIDATION_FAILED"),
        ({"account": LI, "amount": "12.505", "currency": "CNY"}, "amount", "INVALID_AMOUNT"),
        ({"account": LI, "amount": "1e3", "currency": "CNY"}, "amount", "INVALID_AMOUNT"),
        ({"account": LI, "amount": "12.50", "currency": "XXX"}, "amount", "INVALID_AMOUNT"),
        ({"account": LI, "amount": "12.50", "currency": ["CNY"]}, "amount", "INVALID_AMOUNT"),
        ({"amount": "12.50", "currency": "CNY"}, "account", "VALIDATION_FAILED"),
    ],
)
def test_a_request_the_mapping_cannot_build_names_the_field(
    payload: dict[str, Any], field: str, code: str
) -> None:
    with pytest.raises(MappingInputError) as caught:
        debit().request(canonical(**payload))
    assert (caught.value.field, caught.value.code) == (field, code)


def test_a_value_too_long_for_its_field_is_refused_when_encoded() -> None:
    mapping = debit()
    fields = mapping.request(canonical(account="6" * 21, amount="1.00", currency="CNY"))
    with pytest.raises(MappingInputError) as caught:
        mapping.record(fields)
    assert caught.value.field == "account"
    fields = mapping.request(canonical(account="余额", amount="1.00", currency="CNY"))
    with pytest.raises(MappingInputError, match="has no cp037 code"):
        mapping.record(fields)


# --- the code table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend_code", "canonical_code"),
    [
        ("0051", "INSUFFICIENT_FUNDS"),
        ("0014", "NOT_FOUND"),
        ("0013", "INVALID_AMOUNT"),
        ("0094", "DUPLICATE_TRANSMISSION"),
        ("0096", "BACKEND_UNAVAILABLE"),
    ],
)
def test_the_code_table_translates_the_cores_codes(backend_code: str, canonical_code: str) -> None:
    with pytest.raises(MappedRefusal) as caught:
        debit().response({"result": backend_code, "account": LI})
    refusal = caught.value
    assert refusal.code == canonical_code
    assert refusal.details["backend_code"] == backend_code
    assert (refusal.backend, refusal.operation, refusal.in_doubt) == ("core", "debit", False)


def test_an_unknown_code_is_a_bad_response_in_doubt_after_a_debit() -> None:
    with pytest.raises(MappedRefusal) as caught:
        debit().response({"result": "7777"})
    assert caught.value.code == "BACKEND_BAD_RESPONSE"
    assert caught.value.backend_code == "7777"
    assert caught.value.in_doubt  # nobody knows what an unknown code did to the money
    with pytest.raises(MappedRefusal) as caught:
        balance().response({"result": "7777"})
    assert (caught.value.code, caught.value.in_doubt) == ("BACKEND_BAD_RESPONSE", False)


def test_an_answer_the_mapping_cannot_read_is_a_bad_response() -> None:
    with pytest.raises(BackendBadResponse, match="no result code"):
        balance().response({"account": ZHANG})
    with pytest.raises(BackendBadResponse, match="field 'ledger_balance'"):
        balance().response({"result": "0000", "account": ZHANG, "currency": "CNY"})
    with pytest.raises(BackendBadResponse, match="field 'ledger_balance'") as caught:
        balance().response(
            {"result": "0000", "account": ZHANG, "currency": "CNY", "ledger_balance": "12"}
        )
    assert not caught.value.in_doubt  # an inquiry changes nothing
    with pytest.raises(BackendBadResponse, match="does not decode") as caught:
        debit().decode_answer(b"\xff" * 90)
    assert caught.value.in_doubt


# --- against the simulated core, over a real socket -----------------------------------------


@pytest.fixture
async def core_client() -> AsyncIterator[tuple[CoreSimulator, FixedClient]]:
    simulator = CoreSimulator()
    host, port = await simulator.start("127.0.0.1", 0)
    client = FixedClient(host, port, framing=CORE_FRAMING)
    yield simulator, client
    await client.close()
    await simulator.close()


async def call(client: FixedClient, mapping: Mapping, document: dict[str, Any]) -> dict[str, Any]:
    record = mapping.record(mapping.request(document))
    assert mapping.response_layout is not None
    answer = mapping.decode_answer(await client.exchange(record, timeout_seconds=CALL_SECONDS))
    return mapping.response(answer)


async def test_the_core_mappings_against_the_simulated_core(
    core_client: tuple[CoreSimulator, FixedClient],
) -> None:
    simulator, client = core_client
    assert await call(client, balance(), canonical(account=LI)) == {
        "number": LI, "currency": "CNY",
        "ledger_balance": "1250.00", "available_balance": "1250.00",
    }  # fmt: skip
    txn_id = new_id()
    done = await call(
        client, debit(), canonical(txn_id, account=LI, amount="12.50", currency="CNY")
    )
    assert (done["status"], done["amount"], done["available_balance"]) == (
        "applied", "12.50", "1237.50",
    )  # fmt: skip
    assert simulator.balance(LI) == 123_750
    with pytest.raises(MappedRefusal) as caught:  # the same transaction again moves nothing
        await call(client, debit(), canonical(txn_id, account=LI, amount="12.50", currency="CNY"))
    assert caught.value.code == "DUPLICATE_TRANSMISSION"
    with pytest.raises(MappedRefusal) as caught:
        await call(client, debit(), canonical(account=WANG, amount="0.01", currency="CNY"))
    assert (caught.value.code, caught.value.backend_code) == ("INSUFFICIENT_FUNDS", "0051")
    with pytest.raises(MappedRefusal) as caught:
        await call(client, balance(), canonical(account="6217999999999999"))
    assert caught.value.code == "NOT_FOUND"
    assert simulator.balance(LI) == 123_750


# --- formatters -----------------------------------------------------------------------------

_CURRENCIES = sorted(MINOR_UNITS)


@given(
    minor=st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    currency=st.sampled_from(_CURRENCIES),
)
def test_amount_formatting_is_exact(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    text = money.to_decimal_string()
    args = FormatArgs(currency=currency)
    assert apply(("amount_minor",), text, args) == minor
    assert apply(("amount_decimal",), minor, args) == text
    assert apply(("amount_minor", "amount_decimal"), text, args) == text


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_a_reference_is_base32_of_the_right_length(number: int) -> None:
    txn_id = uuid.UUID(int=number)
    for length in (12, 20, 24):
        reference = apply(("reference",), str(txn_id), FormatArgs(length=length))
        assert len(reference) == length
        assert set(reference) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_dates_codes_and_padding() -> None:
    shanghai = FormatArgs(pattern="%Y%m%d", timezone=ZoneInfo("Asia/Shanghai"))
    assert apply(("date",), "2025-03-14T17:30:00+00:00", shanghai) == "20250315"
    back = FormatArgs(parse="%Y%m%d", pattern="%Y-%m-%d")
    assert apply(("date",), "20250315", back) == "2025-03-15"
    table = FormatArgs(table={"A": "applied"}, otherwise="unknown")
    assert apply(("code",), "A", table) == "applied"
    assert apply(("code",), "Z", table) == "unknown"
    assert apply(("string", "pad"), 42, FormatArgs(width=6, fill="0")) == "000042"
    assert apply(("upper", "truncate"), "abcdef", FormatArgs(length=3)) == "ABC"
