"""The risk engine through the kernel, on SQLite and PostgreSQL: each default rule fires on
its scenario and not on the innocent twin; shadow rules change nothing; a failing rule
counts as its fallback; review holds the money until approved (completes) or rejected
(undone, limits given back)."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from channelhub.kernel.held import conclude_held
from channelhub.kernel.model import TxnStatus
from channelhub.kit.clock import utc_now
from channelhub.ledger import service as ledger
from channelhub.limits.schemas import LimitChangeBody
from channelhub.limits.service import change_bank_limit
from channelhub.risk.errors import RuleInvalid
from channelhub.risk.schemas import RuleBody
from channelhub.risk.service import save_rule
from tests.risk.conftest import add_to_list, decisions
from tests.support.bank import Bank
from tests.support.clock import at_bank_time


async def _available(bank: Bank, number: str) -> int:
    async with bank.runtime.sessions() as session:
        return (await ledger.balances(session, [number]))[number].available_minor


async def test_large_amount_to_a_new_beneficiary_is_challenged(bank: Bank) -> None:
    # Innocent twin: a small amount to a new beneficiary goes through.
    small = await bank.call("alice", "transfer.internal", bank.transfer("10.00", to="bob.CNY"))
    assert small.ok, small
    # The same large amount to bob, now known, needs no code...
    known = await bank.call("alice", "transfer.internal", bank.transfer("2500.00"), confirm=False)
    assert known.ok, known
    # ...but to a beneficiary alice never paid, it does; nothing is journaled or posted.
    acme = bank.accounts["acme.op1.CNY"]
    payload = {**bank.transfer("2500.00"), "to_account": acme}
    postings = await bank.postings()
    challenged = await bank.call("alice", "transfer.internal", payload, confirm=False)
    assert challenged.code in ("STEP_UP_REQUIRED", "MFA_NOT_ENROLLED")
    assert await bank.postings() == postings
    # The customer's authenticator answers the challenge, and the transfer goes through.
    confirmed = await bank.call("alice", "transfer.internal", payload)
    assert confirmed.ok, confirmed
    fired = [f["rule"] for d in await decisions(bank, confirmed.txn_id) for f in d.fired]
    assert "large_amount_new_beneficiary" in fired


async def test_a_burst_of_transfers_is_held_for_review(bank: Bank) -> None:
    # Innocent twin: bob makes 5 transfers in 5 minutes; all go through.
    for _ in range(5):
        result = await bank.call(
            "bob", "transfer.internal", bank.transfer("1.00", source="bob.CNY", to="alice.CNY")
        )
        assert result.ok, result
    # alice makes 6: the sixth is held.
    for _ in range(5):
        assert (await bank.call("alice", "transfer.internal", bank.transfer("1.00"))).ok
    before = await _available(bank, bank.accounts["alice.CNY"])
    sixth = await bank.call("alice", "transfer.internal", bank.transfer("1.00"))
    assert (sixth.status, sixth.code) == (TxnStatus.IN_REVIEW, "REVIEW_PENDING")
    assert sixth.data["review"]
    # The money is held, not moved: 1.00 plus the 2.00 fee.
    assert before - await _available(bank, bank.accounts["alice.CNY"]) == 300
    decision = (await decisions(bank, sixth.txn_id))[-1]
    assert decision.outcome == "review"
    assert decision.features["customer_count_5m"] == 5


async def test_a_transfer_at_night_from_a_new_device_is_challenged(bank: Bank) -> None:
    payload = bank.transfer("5.00")
    # Innocent twins: a new device by day; a known device at night.
    assert (await bank.call("alice", "transfer.internal", payload, device="alice-phone")).ok
    at_bank_time(bank.runtime, 23)
    known = await bank.call(
        "alice", "transfer.internal", payload, device="alice-phone", confirm=False
    )
    assert known.ok, known
    new = await bank.call(
        "alice", "transfer.internal", payload, device="alice-new-tablet", confirm=False
    )
    assert new.code in ("STEP_UP_REQUIRED", "MFA_NOT_ENROLLED")
    at_bank_time(bank.runtime, 3)
    confirmed = await bank.call("alice", "transfer.internal", payload, device="alice-other-tablet")
    assert confirmed.ok, confirmed
    fired = [f["rule"] for d in await decisions(bank, confirmed.txn_id) for f in d.fired]
    assert "night_new_device" in fired


async def test_a_party_on_the_deny_list_is_denied(bank: Bank) -> None:
    await add_to_list(bank.runtime, "deny", "account", bank.accounts["bob.CNY"])
    # Innocent twin: another beneficiary goes through.
    other = {**bank.transfer("5.00"), "to_account": bank.accounts["acme.op1.CNY"]}
    assert (await bank.call("alice", "transfer.internal", other)).ok
    postings = await bank.postings()
    denied = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
    assert (denied.status, denied.code) == (TxnStatus.FAILED, "RISK_DENIED")
    # Which rule denied it is the bank's business, not the caller's.
    assert set(denied.details) == {"decision"}
    assert await bank.postings() == postings
    decision = (await decisions(bank, denied.txn_id))[-1]
    assert decision.outcome == "deny"
    assert [f["rule"] for f in decision.fired] == ["deny_list"]
    # A device on the deny list, and a beneficiary's name (matched case- and space-blind).
    await add_to_list(bank.runtime, "deny", "device", "stolen-phone")
    device = await bank.call("alice", "transfer.internal", other, device="stolen-phone")
    assert device.code == "RISK_DENIED"


async def test_a_beneficiary_name_on_the_deny_list_is_denied(bank: Bank) -> None:
    async with bank.runtime.sessions() as session:
        name = await session.scalar(
            text(
                "SELECT c.name FROM customers c JOIN accounts a ON a.customer_id = c.id"
                " WHERE a.number = :n"
            ),
            {"n": bank.accounts["bob.CNY"]},
        )
    await add_to_list(
        bank.runtime, "deny", "beneficiary_name", "  " + str(name).upper().replace(" ", "   ")
    )
    denied = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
    assert denied.code == "RISK_DENIED"


async def test_shadow_rules_are_recorded_and_change_nothing(bank: Bank) -> None:
    async with bank.runtime.sessions() as session, session.begin():
        await save_rule(
            session,
            RuleBody(
                name="deny_everything", expression="txn.amount > 0", outcome="deny", score=100
            ),
            by="test",
            now=utc_now(),
            error_outcome="review",
        )
    bank.runtime.risk.invalidate()
    fired = ("channelhub_risk_rules_fired_total", {
        "rule": "deny_everything", "version": "1", "mode": "shadow", "outcome": "deny"
    })  # fmt: skip
    before = REGISTRY.get_sample_value(*fired) or 0.0
    result = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
    assert result.ok, result
    # How often a shadow rule would have acted is on /metrics, before anyone switches it on.
    assert REGISTRY.get_sample_value(*fired) == before + 1
    decision = (await decisions(bank, result.txn_id))[-1]
    assert decision.outcome == "allow"
    assert {
        "rule": "deny_everything",
        "version": 1,
        "outcome": "deny",
        "score": 100,
        "shadow": True,
    } in decision.fired


async def test_a_rule_failing_at_run_time_counts_as_its_fallback(bank: Bank) -> None:
    async with bank.runtime.sessions() as session, session.begin():
        await save_rule(
            session,
            RuleBody(
                name="ratio",
                expression="txn.amount / features.customer_count_5m > 100",
                outcome="allow",
                on_error="deny",
                mode="active",
            ),
            by="test",
            now=utc_now(),
            error_outcome="review",
        )
    bank.runtime.risk.invalidate()
    result = await bank.call("alice", "transfer.internal", bank.transfer("5.00"))
    assert result.code == "RISK_DENIED"
    decision = (await decisions(bank, result.txn_id))[-1]
    failing = next(f for f in decision.fired if f["rule"] == "ratio")
    assert "division by zero" in failing["error"]


async def test_a_rule_that_does_not_compile_is_refused_when_saved(bank: Bank) -> None:
    async with bank.runtime.sessions() as session:
        with pytest.raises(RuleInvalid) as caught:
            await save_rule(
                session,
                RuleBody(name="broken", expression="txn.amount >", outcome="deny"),
                by="test",
                now=utc_now(),
                error_outcome="review",
            )
    assert (caught.value.details["line"], caught.value.details["column"]) == (1, 13)


async def _review_scenario(bank: Bank) -> tuple[uuid.UUID, dict[str, int]]:
    """Hold alice's sixth transfer of 7.00 within 5 minutes; return it and the balances."""
    async with bank.runtime.sessions() as session, session.begin():
        await change_bank_limit(
            session,
            LimitChangeBody(
                level="global",
                scope="transfer.outgoing",
                currency="CNY",
                period="daily",
                amount="1000.00",
            ),
            changed_by="test",
            now=utc_now(),
        )
    bank.runtime.limits.invalidate()
    for _ in range(5):
        assert (await bank.call("alice", "transfer.internal", bank.transfer("7.00"))).ok
    held = await bank.call("alice", "transfer.internal", bank.transfer("7.00"))
    assert held.status is TxnStatus.IN_REVIEW, held
    numbers = {who: bank.accounts[f"{who}.CNY"] for who in ("alice", "bob")}
    balances = {who: await bank.balance(number) for who, number in numbers.items()}
    return held.txn_id, balances


async def _limit_used(bank: Bank) -> int:
    async with bank.runtime.sessions() as session:
        return int(await session.scalar(text("SELECT sum(used_minor) FROM limit_usage")) or 0)


async def test_review_approved_completes_the_transfer(bank: Bank) -> None:
    txn_id, before = await _review_scenario(bank)
    assert await _limit_used(bank) == 6 * 700
    async with bank.runtime.sessions() as session, session.begin():
        result = await conclude_held(
            bank.runtime.engine, session, txn_id, approve=True, gate="review", now=utc_now()
        )
    assert result is not None
    assert (result.status, result.code) == (TxnStatus.SUCCEEDED, "OK")
    assert await bank.balance(bank.accounts["alice.CNY"]) == before["alice"] - 900
    assert await bank.balance(bank.accounts["bob.CNY"]) == before["bob"] + 700
    assert await _available(bank, bank.accounts["alice.CNY"]) == await bank.balance(
        bank.accounts["alice.CNY"]
    )
    assert await _limit_used(bank) == 6 * 700
    assert await bank.verify() == []
    # A retry of the held request now answers its final outcome; deciding again does nothing.
    async with bank.runtime.sessions() as session, session.begin():
        assert (
            await conclude_held(
                bank.runtime.engine, session, txn_id, approve=False, gate="review", now=utc_now()
            )
            is None
        )


async def test_review_rejected_undoes_the_transfer_and_gives_the_limit_back(bank: Bank) -> None:
    txn_id, before = await _review_scenario(bank)
    async with bank.runtime.sessions() as session, session.begin():
        result = await conclude_held(
            bank.runtime.engine, session, txn_id, approve=False, gate="review", now=utc_now()
        )
    assert result is not None
    assert (result.status, result.code) == (TxnStatus.FAILED, "REVIEW_REJECTED")
    assert await bank.balance(bank.accounts["alice.CNY"]) == before["alice"]
    assert await _available(bank, bank.accounts["alice.CNY"]) == before["alice"]
    assert await _limit_used(bank) == 5 * 700
    assert await bank.verify() == []
