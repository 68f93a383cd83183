"""``channelhub mapping test``, run as an operator runs it: what would go over the wire and
what would come back, byte by byte, with nothing sent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from channelhub.connectors.fixed import encode
from channelhub.connectors.simulators.core import CORE_RESPONSE
from tests.support.processes import channelhub, node_env

pytestmark = pytest.mark.slow

LI = "6217000000000002"
TXN = "01890a5d-ac96-774b-bcce-b302099a8057"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return node_env(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(document))
    return path


def debit_sample(tmp_path: Path, amount: str = "12.50") -> Path:
    payload = {"account": LI, "amount": amount, "currency": "CNY"}
    return write(tmp_path, "sample.json", {"input": payload, "context": {"txn_id": TXN}})


def test_it_shows_the_request_record_byte_by_byte(tmp_path: Path, env: dict[str, str]) -> None:
    result = channelhub(
        "mapping", "test", "core-debit", "--input", str(debit_sample(tmp_path)), env=env
    )
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "00 53" in shown  # the 2-byte length prefix: 83 bytes
    assert "C4 C5 C2 E3" in shown  # DEBT in EBCDIC
    assert "00 00 00 00 00 01 25 0C" in shown  # 12.50 as packed decimal fen
    assert "F6 F2 F1 F7" in shown  # the account's first digits, zoned EBCDIC
    assert "no answer given" in shown


def test_it_maps_an_answer_to_the_canonical_response(tmp_path: Path, env: dict[str, str]) -> None:
    answer = write(
        tmp_path,
        "answer.json",
        {"txn_code": "BINQ", "result": "0000", "account": LI, "currency": "CNY",
         "ledger_balance": 125_000, "available_balance": 120_000},
    )  # fmt: skip
    sample = write(tmp_path, "sample.json", {"input": {"account": LI}})
    result = channelhub(
        "mapping", "test", "core-balance", "--input", str(sample), "--answer", str(answer),
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "canonical response" in result.stdout
    assert '"1250.00"' in result.stdout
    assert '"1200.00"' in result.stdout


def test_an_answer_in_hex_gives_the_canonical_error(tmp_path: Path, env: dict[str, str]) -> None:
    record = encode(CORE_RESPONSE, {"txn_code": "DEBT", "result": "0051", "account": LI})
    framed = (len(record)).to_bytes(2, "big") + record
    for shown in (record.hex(), framed.hex(" ")):
        result = channelhub(
            "mapping", "test", "core-debit", "--input", str(debit_sample(tmp_path)),
            "--answer-hex", shown, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "INSUFFICIENT_FUNDS" in result.stdout
        assert "0051" in result.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "a JSON object is expected"),
        (b'{"payload": {}}', "unknown key(s) payload"),
        (orjson.dumps({"input": {"account": LI, "amount": 12.5, "currency": "CNY"}}), "amount"),
        (
            orjson.dumps({"input": {"account": LI, "amount": "1.001", "currency": "CNY"}}),
            "INVALID_AMOUNT",
        ),
        (
            orjson.dumps({"input": {"account": "9" * 40, "amount": "1", "currency": "CNY"}}),
            "field 'account'",
        ),
        (
            orjson.dumps(
                {"input": {"account": "[bold]x[/bold]\x1b[2J", "amount": "1", "currency": "CNY"}}
            ),
            "",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b" " * 1_100_000, "larger than"),
    ],
)
def test_a_hostile_or_malformed_input_is_refused_with_exit_1(
    tmp_path: Path, env: dict[str, str], content: bytes, words: str
) -> None:
    sample = tmp_path / "sample.json"
    sample.write_bytes(content)
    result = channelhub("mapping", "test", "core-debit", "--input", str(sample), env=env)
    if b"[bold]" in content:  # it fits the record: shown literally, never as markup
        assert result.returncode == 0, result.stderr
        assert "[bold]x[/bold]" in result.stdout
        assert "\x1b" not in result.stdout
        return
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("refused: ")
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_answer_is_refused_with_exit_1(tmp_path: Path, env: dict[str, str]) -> None:
    sample = str(debit_sample(tmp_path))
    for flags, words in (
        (("--answer-hex", "zz"), "not hexadecimal"),
        (("--answer-hex", "ff" * 90), "does not decode"),
        (("--answer", str(write(tmp_path, "a.json", {"result": 51}))), "not a core.response"),
        (("--answer", str(write(tmp_path, "b.json", {"nope": "x"}))), "not a field"),
    ):
        result = channelhub("mapping", "test", "core-debit", "--input", sample, *flags, env=env)
        assert result.returncode == 1, (flags, result.stdout)
        assert words in result.stderr, result.stderr


def test_a_broken_mapping_exits_2_naming_file_field_and_position(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bundled = Path(__file__).resolve().parents[2] / "src/channelhub/connectors/mappings"
    text = (bundled / "core-balance.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        text.replace(
            "file: ../simulators/core_layouts.yaml",
            f"file: {bundled.parent}/simulators/core_layouts.yaml",
        ).replace("account: input.account", "account: input.[account"),
        encoding="utf-8",
    )
    sample = write(tmp_path, "sample.json", {"input": {"account": LI}})
    result = channelhub("mapping", "test", str(broken), "--input", str(sample), env=env)
    assert result.returncode == 2
    assert str(broken) in result.stderr
    assert "request.account at column 14" in result.stderr
    result = channelhub(
        "mapping", "test", str(tmp_path / "none.yaml"), "--input", str(sample), env=env
    )
    assert result.returncode == 2
    assert "none.yaml" in result.stderr


def test_a_json_mapping_reads_earlier_outputs_and_shows_a_clearing_rejection(
    tmp_path: Path, env: dict[str, str]
) -> None:
    payload = {
        "from_account": "0101000000000189",
        "creditor_agent": "BKCHCNBJXXX",
        "creditor_account": "6216610100000002",
        "creditor_name": "SUN LI",
        "amount": "250.00",
        "currency": "CNY",
    }
    sample = write(
        tmp_path,
        "sample.json",
        {
            "input": payload,
            "context": {"txn_id": TXN, "bank": {"bic": "CHUBCNSHXXX"}},
            "outputs": {"transfer": {"debtor_name": "ALICE"}},
        },
    )
    answer = write(tmp_path, "answer.json", {"status": "RJCT", "reason": "AC04"})
    result = channelhub(
        "mapping", "test", "clearing-credit-transfer", "--input", str(sample),
        "--answer", str(answer), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"debtor_name":"ALICE"' in result.stdout  # from the prepare step's output
    assert "ACCOUNT_CLOSED" in result.stdout
    assert "AC04" in result.stdout


def test_a_sample_part_that_is_not_an_object_is_refused(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sample = write(tmp_path, "sample.json", {"input": {}, "outputs": ["not", "an", "object"]})
    result = channelhub("mapping", "test", "core-debit", "--input", str(sample), env=env)
    assert result.returncode == 1
    assert "outputs is a JSON object" in result.stderr
