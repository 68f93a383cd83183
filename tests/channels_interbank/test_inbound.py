"""``POST /interbank/v1/pacs.008`` over a real socket, on SQLite and PostgreSQL: credits
accepted, each rejection reason, duplicates, messages that do not add up, XML attacks, and
every way an unauthenticated or misaddressed message is refused, with balances and postings
checked after each."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from lxml import etree

from channelhub.demo.identities import DEMO_PARTNER_ID, DEMO_PARTNER_SECRET
from tests.channels_interbank.conftest import Interbank
from tests.channels_interbank.sender import Payment, SendingBank, pacs008

pytestmark = pytest.mark.asyncio


def _id(prefix: str = "MSG") -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


async def test_an_accepted_message_credits_each_creditor_from_clearing(
    interbank: Interbank,
) -> None:
    before = await interbank.balances("alice.CNY", "bob.CNY")
    clearing, postings = await interbank.clearing(), await interbank.bank.postings()
    payments = [
        Payment(interbank.account("alice.CNY"), "1250.50"),
        Payment(interbank.account("bob.CNY"), "0099.90", remittance=None),
    ]
    message_id = _id()

    report = await interbank.sender.send(pacs008(message_id, payments, total="1350.40"))

    assert report.status == 200
    assert report.group == ("ACSC", None)
    assert report.original_message_id == message_id
    statuses = report.transactions
    assert [statuses[p.tx_id][:2] for p in payments] == [("ACSC", None), ("ACSC", None)]
    assert all(statuses[p.tx_id][2] for p in payments)  # the bank's reference of each credit
    after = await interbank.balances("alice.CNY", "bob.CNY")
    assert after["alice.CNY"] - before["alice.CNY"] == 125050
    assert after["bob.CNY"] - before["bob.CNY"] == 9990
    assert await interbank.clearing() - clearing == -135040
    assert await interbank.bank.postings() - postings == 4
    assert await interbank.bank.verify() == []


async def test_each_rejection_has_its_iso_reason_and_moves_nothing(
    interbank: Interbank,
) -> None:
    await interbank.set_status("acme.op1.CNY", "closed")
    await interbank.set_status("bob.USD", "frozen")
    names = ("alice.CNY", "alice.USD", "bob.USD", "acme.op1.CNY")
    before, postings = await interbank.balances(*names), await interbank.bank.postings()
    clearing = await interbank.clearing()
    cases = {
        "AC01 unknown": Payment("6217000000000000000", "10.00"),
        "AC01 IBAN": Payment("CN12345678901234567890", "10.00", iban=True),
        "AC01 none": Payment(None, "10.00"),
        "AC04": Payment(interbank.account("acme.op1.CNY"), "10.00"),
        "AC06": Payment(interbank.account("bob.USD"), "10.00", currency="USD"),
        "AM03 account": Payment(interbank.account("alice.CNY"), "10.00", currency="USD"),
        "AM03 unknown": Payment(interbank.account("alice.CNY"), "10.00", currency="XYZ"),
        "AM09 decimals": Payment(interbank.account("alice.CNY"), "10.001"),
        "AM09 zero": Payment(interbank.account("alice.CNY"), "0.00"),
        # Within the message's format, beyond any 64-bit column: refused, not a crash.
        "AM09 huge": Payment(interbank.account("alice.CNY"), "99999999999999999.99"),
        "ACSC": Payment(interbank.account("alice.USD"), "25.00", currency="USD"),
    }

    report = await interbank.sender.send(pacs008(_id(), list(cases.values())))

    assert report.status == 200
    assert report.group == ("PART", None)
    got = {name: report.transactions[p.tx_id][:2] for name, p in cases.items()}
    assert got == {
        "AC01 unknown": ("RJCT", "AC01"),
        "AC01 IBAN": ("RJCT", "AC01"),
        "AC01 none": ("RJCT", "AC01"),
        "AC04": ("RJCT", "AC04"),
        "AC06": ("RJCT", "AC06"),
        "AM03 account": ("RJCT", "AM03"),
        "AM03 unknown": ("RJCT", "AM03"),
        "AM09 decimals": ("RJCT", "AM09"),
        "AM09 zero": ("RJCT", "AM09"),
        "AM09 huge": ("RJCT", "AM09"),
        "ACSC": ("ACSC", None),
    }
    after = await interbank.balances(*names)
    assert {n: after[n] - before[n] for n in names} == {
        "alice.CNY": 0,
        "alice.USD": 2500,
        "bob.USD": 0,
        "acme.op1.CNY": 0,
    }
    assert await interbank.clearing() == clearing  # CNY clearing untouched
    assert await interbank.bank.postings() - postings == 2
    assert await interbank.bank.verify() == []


async def test_a_message_whose_every_transaction_fails_is_rejected_as_a_group(
    interbank: Interbank,
) -> None:
    payment = Payment("6217000000000000000", "10.00")
    report = await interbank.sender.send(pacs008(_id(), [payment]))
    assert report.group == ("RJCT", None)
    assert report.transactions[payment.tx_id][:2] == ("RJCT", "AC01")


async def test_a_message_sent_again_answers_the_same_and_credits_once(
    interbank: Interbank,
) -> None:
    payments = [
        Payment(interbank.account("alice.CNY"), "300.00"),
        Payment("6217000000000000000", "5.00"),
    ]
    message = pacs008(_id(), payments)
    first = await interbank.sender.send(message)
    balance, postings = await interbank.balances("alice.CNY"), await interbank.bank.postings()

    again = await interbank.sender.send(message)  # a new nonce and signature, the same message

    assert again.status == 200
    assert again.message_id == first.message_id
    assert again.group == first.group == ("PART", None)
    assert again.transactions == first.transactions
    assert await interbank.balances("alice.CNY") == balance
    assert await interbank.bank.postings() == postings


async def test_duplicates_are_rejected_with_dupl_and_move_nothing(interbank: Interbank) -> None:
    alice = interbank.account("alice.CNY")
    settled = Payment(alice, "100.00")
    message_id = _id()
    assert (await interbank.sender.send(pacs008(message_id, [settled]))).group == ("ACSC", None)
    balance, postings = await interbank.balances("alice.CNY"), await interbank.bank.postings()

    # 1. The message id again, with other content: the whole message is a duplicate.
    other = Payment(alice, "999.00")
    reused = await interbank.sender.send(pacs008(message_id, [other]))
    assert reused.status == 200
    assert reused.group == ("RJCT", "DUPL")
    assert reused.transactions[other.tx_id][:2] == ("RJCT", "DUPL")

    # 2. A transaction id already settled, under a new message id.
    resent = Payment(alice, "100.00", tx_id=settled.tx_id, end_to_end_id=settled.end_to_end_id)
    fresh = Payment(alice, "1.00")
    report = await interbank.sender.send(pacs008(_id(), [resent, fresh]))
    assert report.group == ("PART", None)
    assert report.transactions[settled.tx_id][:2] == ("RJCT", "DUPL")
    assert report.transactions[fresh.tx_id][:2] == ("ACSC", None)

    # 3. The same transaction id twice in one message: the second is a duplicate.
    twin = Payment(alice, "2.00")
    report = await interbank.sender.send(pacs008(_id(), [twin, twin]))
    assert report.statuses() == [("ACSC", None), ("RJCT", "DUPL")]

    assert await interbank.balances("alice.CNY") == {"alice.CNY": balance["alice.CNY"] + 300}
    assert await interbank.bank.postings() - postings == 4
    assert await interbank.bank.verify() == []


@pytest.mark.parametrize(
    ("count", "control_sum", "total"),
    [
        (3, "auto", None),  # NbOfTxs says three, the message has two
        (None, "20.01", None),  # CtrlSum is not the sum
        (None, None, "19.99"),  # TtlIntrBkSttlmAmt is not the sum
        (None, "not-a-number", None),
    ],
    ids=["count", "control-sum", "total", "control-sum-format"],
)
async def test_a_message_that_does_not_add_up_is_ff01_and_moves_nothing(
    interbank: Interbank, count: int | None, control_sum: str | None, total: str | None
) -> None:
    payments = [Payment(interbank.account("alice.CNY"), "10.00")] * 2
    balance, postings = await interbank.balances("alice.CNY"), await interbank.bank.postings()
    message_id = _id()

    report = await interbank.sender.send(
        pacs008(message_id, payments, count=count, control_sum=control_sum, total=total)
    )

    assert report.status == 200
    assert report.original_message_id == message_id
    assert report.group == ("RJCT", "FF01")
    assert report.transactions == {}
    assert await interbank.balances("alice.CNY") == balance
    assert await interbank.bank.postings() == postings


async def test_a_message_for_another_bank_is_rejected(interbank: Interbank) -> None:
    payment = Payment(interbank.account("alice.CNY"), "10.00")
    postings = await interbank.bank.postings()
    report = await interbank.sender.send(pacs008(_id(), [payment], instructed="OTHRCNSHXXX"))
    assert report.group == ("RJCT", "AGNT")
    assert report.transactions == {}
    assert await interbank.bank.postings() == postings


_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>
<GrpHdr><MsgId>&lol4;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"""

_EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>
<GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"""


def _utf16_entity_attack() -> bytes:
    return (
        _EXTERNAL_ENTITY.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
        .decode("ascii")
        .encode("utf-16")
    )


def _entity_in_valid_message() -> bytes:
    """A well-formed pacs.008 whose creditor account is an external entity."""
    message = pacs008(_id(), [Payment("ACCOUNT-HERE", "10.00")])
    declaration = b'<!DOCTYPE Document [<!ENTITY acct SYSTEM "file:///etc/hostname">]>\n'
    message = message.replace(b"?>\n", b"?>\n" + declaration, 1)
    return message.replace(b"ACCOUNT-HERE", b"&acct;")


@pytest.mark.parametrize(
    "attack",
    ["billion-laughs", "external-entity", "utf-16", "entity-in-message", "undeclared-entity"],
)
async def test_an_xml_entity_attack_is_refused_unread(interbank: Interbank, attack: str) -> None:
    body = {
        "billion-laughs": _BILLION_LAUGHS,
        "external-entity": _EXTERNAL_ENTITY,
        "utf-16": _utf16_entity_attack(),
        "entity-in-message": _entity_in_valid_message(),
        "undeclared-entity": pacs008(_id(), [Payment("&acct;", "1.00")]).replace(
            b"&amp;acct;", b"&acct;"
        ),
    }[attack]
    before, postings = await interbank.balances("alice.CNY"), await interbank.bank.postings()

    report = await interbank.sender.send(body)

    assert report.status == 400
    assert report.group == ("RJCT", "FF01")
    assert report.original_message_id == "NOTPROVIDED"
    assert b"root:" not in etree.tostring(report.document)  # nothing of /etc/passwd
    assert await interbank.balances("alice.CNY") == before
    assert await interbank.bank.postings() == postings


async def test_garbage_is_ff01_with_http_400(interbank: Interbank) -> None:
    for body in (b"", b"not xml", b"<Document/>", b"<a><b></a>", b"\xff\xfe\x00"):
        report = await interbank.sender.send(body)
        assert report.status == 400, body
        assert report.group == ("RJCT", "FF01")


async def test_only_a_signed_participant_may_send(interbank: Interbank) -> None:
    sender = interbank.sender
    body = pacs008(_id(), [Payment(interbank.account("alice.CNY"), "10.00")])
    postings = await interbank.bank.postings()

    # Unsigned, or signed over another body, or with the same nonce twice.
    status, _, answer = await sender.post(body, {"Content-Type": "application/xml"})
    assert status == 401, answer
    headers = sender.headers(body + b" ")
    assert (await sender.post(body, headers))[0] == 401
    headers = sender.headers(body, nonce="spent-nonce-1")
    assert (await sender.post(body, headers))[0] == 200
    status, _, answer = await sender.post(body, sender.headers(body, nonce="spent-nonce-1"))
    assert status == 401
    assert b"REQUEST_REPLAYED" in answer

    # A partner app that is not an interbank participant.
    fintech = SendingBank(
        sender.http, interbank.base, client_id=DEMO_PARTNER_ID, secret=DEMO_PARTNER_SECRET
    )
    await fintech.log_in()
    status, _, answer = await fintech.post(body)
    assert status == 403, answer

    # The participant sending as another bank.
    other = pacs008(
        _id(), [Payment(interbank.account("alice.CNY"), "10.00")], instructing="OTHRCNSH"
    )
    status, _, answer = await sender.post(other)
    assert status == 403, answer

    # Wrong type, too large.
    headers = sender.headers(body)
    headers["Content-Type"] = "application/json"
    assert (await sender.post(body, headers))[0] == 415
    huge = b"<a>" + b"x" * 1_100_000 + b"</a>"
    assert (await sender.post(huge))[0] == 413

    assert await interbank.bank.postings() == postings + 2  # the one accepted message


async def test_the_same_message_sent_twice_at_once_credits_once(interbank: Interbank) -> None:
    payments = [Payment(interbank.account("bob.CNY"), "40.00") for _ in range(3)]
    message = pacs008(_id(), payments)
    before, postings = await interbank.balances("bob.CNY"), await interbank.bank.postings()

    first, second = await asyncio.gather(
        interbank.sender.send(message), interbank.sender.send(message)
    )

    assert first.group == second.group == ("ACSC", None)
    assert first.transactions == second.transactions
    after = await interbank.balances("bob.CNY")
    assert after["bob.CNY"] - before["bob.CNY"] == 12000
    assert await interbank.bank.postings() - postings == 6
    assert await interbank.bank.verify() == []
