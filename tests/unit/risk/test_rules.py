"""Rules alone: compiling with positions, refusing what cannot run, evaluating a set with a
failing rule, shadow rules, and the decision."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelhub.risk.rules import (
    Evaluation,
    Fired,
    Rule,
    RuleError,
    RuleSet,
    check_rule,
    compile_rule,
    decide,
    features_read,
    sample_activation,
)


def _rule(name: str, expression: str, outcome: str = "deny", **extra: Any) -> Rule:
    return Rule(
        name=name,
        version=extra.get("version", 1),
        expression=expression,
        outcome=outcome,
        score=extra.get("score", 10),
        on_error=extra.get("on_error", "review"),
        mode=extra.get("mode", "active"),
    )


def _activation(**txn: Any) -> dict[str, Any]:
    values = sample_activation()
    values["txn"].update(txn)
    return values


@pytest.mark.parametrize(
    ("expression", "line", "column"),
    [
        ("txn.amount >", 1, 13),
        ("txn.amount > 5 &&\n(features.new_device", 2, 21),
        ("txn.amount ==== 1", 1, 14),
    ],
)
def test_a_rule_that_does_not_parse_is_refused_with_its_position(
    expression: str, line: int, column: int
) -> None:
    with pytest.raises(RuleError) as caught:
        check_rule(expression)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("txn.amout > 5", "no such variable or field: amout"),
        ("features.not_a_feature", "not_a_feature"),
        ("txn.amount", "yields int"),
        ("txn.amount > 'five'", ""),
        ("nosuchfunction(txn.amount)", ""),
    ],
)
def test_a_rule_that_cannot_run_is_refused_when_saved(expression: str, reason: str) -> None:
    with pytest.raises(RuleError) as caught:
        check_rule(expression)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 1990 + "true" + ")" * 1990,
        "[" * 1500 + "]" * 1500 + " == []",
        "{1: " * 800 + "1" + "}" * 800 + " == {}",
        "txn.amount > 1 &&" * 250,
        "\x00 txn.amount > 1",
        'txn.currency == "CNY && 😀',
    ],
    ids=["parentheses", "lists", "maps", "dangling-and", "nul", "unterminated-string"],
)
def test_hostile_expressions_are_refused_without_crashing(expression: str) -> None:
    # Nesting deep enough to overflow a recursive parser's stack, and bytes a parser may not
    # expect: a clear refusal, never a crash of the process.
    with pytest.raises(RuleError):
        check_rule(expression[:4000])


def test_a_long_chain_of_negations_is_fine() -> None:
    assert check_rule("!" * 3001 + "true").execute(sample_activation()) is False


def test_one_program_gives_each_rule_its_verdict() -> None:
    rules = RuleSet(
        [
            _rule("big", "txn.amount >= 100000", "challenge", score=30),
            _rule("mobile", 'txn.channel == "mobile"', "allow", score=5),
            _rule("night", "txn.hour < 6", "review", score=50),
        ]
    )
    result = rules.evaluate(_activation(amount=100000, hour=12), error_outcome="review")
    assert [f.rule for f in result.fired] == ["big", "mobile"]
    assert (result.outcome, result.score) == ("challenge", 35)
    quiet = rules.evaluate(_activation(amount=5, channel="web", hour=12), error_outcome="review")
    assert (quiet.outcome, quiet.score, quiet.fired) == ("allow", 0, ())


def test_a_rule_failing_at_run_time_counts_as_its_fallback_and_others_still_run() -> None:
    rules = RuleSet(
        [
            _rule(
                "divides", "txn.amount / features.customer_count_5m > 10", "deny", on_error="review"
            ),
            _rule("big", "txn.amount >= 100", "challenge"),
        ]
    )
    result = rules.evaluate(_activation(amount=500), error_outcome="allow")
    assert result.outcome == "review"
    failing = next(f for f in result.fired if f.rule == "divides")
    assert failing.error is not None
    assert "division by zero" in failing.error
    assert failing.outcome == "review"
    assert any(f.rule == "big" for f in result.fired)


def test_shadow_rules_are_recorded_and_never_enforced() -> None:
    rules = RuleSet(
        [
            _rule("everything", "true", "deny", mode="shadow", score=100),
            _rule("small", "txn.amount < 10", "allow", score=1),
        ]
    )
    result = rules.evaluate(_activation(amount=5), error_outcome="review")
    assert (result.outcome, result.score) == ("allow", 1)
    assert [(f.rule, f.shadow) for f in result.fired] == [("everything", True), ("small", False)]


def test_only_the_features_rules_read_are_named() -> None:
    assert features_read(
        ["features.new_device && txn.hour < 6", "features.customer_sum_1h > 5"]
    ) == {
        "new_device",
        "customer_sum_1h",
    }


_OUTCOME = st.sampled_from(["allow", "challenge", "review", "deny"])


@given(st.lists(st.tuples(_OUTCOME, st.integers(0, 1000), st.booleans()), max_size=20))
def test_the_decision_is_the_severest_enforced_outcome(
    fired: list[tuple[str, int, bool]],
) -> None:
    records = [
        Fired(f"r{i}", 1, outcome, score, shadow)
        for i, (outcome, score, shadow) in enumerate(fired)
    ]
    result = decide(records)
    enforced = [(o, s) for o, s, shadow in fired if not shadow]
    order = ["allow", "challenge", "review", "deny"]
    expected = max((o for o, _ in enforced), key=order.index, default="allow")
    assert result.outcome == expected
    assert result.score == min(sum(s for _, s in enforced), 1000)
    assert len(result.fired) == len(fired)


def test_the_rules_are_handed_only_what_they_read() -> None:
    rules = RuleSet(
        [
            _rule("big", "txn.amount >= 100 && features.customer_count_5m > 2"),
            _rule("listed", "lists.deny"),
        ]
    )
    trimmed = rules.trim(sample_activation())
    assert trimmed == {
        "txn": {"amount": 100},
        "features": {"customer_count_5m": 0},
        "lists": {"deny": False},
    }
    # A variable named whole (not one field of it) goes whole.
    whole = RuleSet([_rule("keyed", '"device" in txn && size(customer) > 0')])
    activation = sample_activation()
    assert whole.trim(activation) == {"txn": activation["txn"], "customer": activation["customer"]}


_ACTIVATIONS = st.fixed_dictionaries(
    {
        "txn": st.fixed_dictionaries(
            {
                "service": st.sampled_from(["transfer.internal", "cash.withdraw"]),
                "channel": st.sampled_from(["mobile", "atm", "teller"]),
                "amount": st.integers(0, 10**9),
                "currency": st.sampled_from(["CNY", "USD"]),
                "beneficiary": st.text(max_size=8),
                "device": st.text(max_size=8),
                "address": st.text(max_size=8),
                "hour": st.integers(0, 23),
                "minute": st.integers(0, 59),
                "weekday": st.integers(1, 7),
            }
        ),
        "customer": st.fixed_dictionaries(
            {"segment": st.sampled_from(["retail", "vip"]), "kyc_level": st.integers(0, 3)}
        ),
        "features": st.fixed_dictionaries(
            {
                "customer_count_5m": st.integers(0, 20),
                "customer_sum_24h": st.integers(0, 10**9),
                "new_beneficiary": st.booleans(),
                "new_device": st.booleans(),
            }
        ),
        "lists": st.fixed_dictionaries(
            {
                "deny": st.booleans(),
                "watch": st.booleans(),
                "deny_hits": st.lists(st.sampled_from(["account", "device"]), max_size=2),
                "watch_hits": st.lists(st.sampled_from(["account", "device"]), max_size=2),
            }
        ),
    }
)
_MIXED = RuleSet(
    [
        _rule("default_like", "features.new_beneficiary && txn.amount >= 200000", "challenge"),
        _rule("burst", "features.customer_count_5m >= 5", "review"),
        _rule("night", "(txn.hour >= 23 || txn.hour < 6) && features.new_device", "challenge"),
        _rule("hits", '"device" in lists.deny_hits || lists.watch', "review"),
        _rule("vip", 'customer.segment == "vip" && txn.channel == "atm"', "allow"),
        _rule("whole", 'has(txn.device) && size(txn) == 10 && txn.device != ""', "allow"),
        _rule("sum", "features.customer_sum_24h > 5000000", "deny"),
    ]
)


@given(_ACTIVATIONS)
def test_trimming_never_changes_a_verdict(activation: dict[str, Any]) -> None:
    full = _MIXED.evaluate(activation, error_outcome="review")
    assert _MIXED.evaluate(_MIXED.trim(activation), error_outcome="review") == full


# Rules whose fields the one program must read right whether it takes them as variables of
# their own or not: a path inside a string, a comprehension's variable with a field path like
# the activation's, a field selected with spaces. Then a field tested with has() (its variable
# stays a map), an escape in a string (every variable stays a map), a field that is not there
# (the program fails and the rules run one by one).
_TRICKY = [
    _rule("literal", 'size("txn.amount") == 10 && txn.amount > 500000000', "review"),
    _rule("single", "size('features.new_device') == 19 && features.new_beneficiary", "deny"),
    _rule(
        "nested",
        '[{"tx" + "n": {"amount": 1}}].exists(x, has(x.txn.amount) && x . txn.amount == 1)'
        " && features.new_device",
        "challenge",
    ),
    _rule("spaced", "features . customer_count_5m >= 3 && lists .deny", "deny"),
]
_EXTRA = {
    "fields apart": [],
    "has() keeps txn whole": [_rule("tested", 'has(txn.device) && txn.device == ""', "allow")],
    "an escape keeps maps": [
        _rule("escaped", 'txn.device != "a\\"b" && features.new_beneficiary', "review")
    ],
    "a missing field": [_rule("missing", "txn.no_such_field > 1", "allow")],
}


def _one_by_one(rules: list[Rule], activation: dict[str, Any]) -> Evaluation:
    """The verdict from each rule's own program on the activation as it is (maps)."""
    fired = []
    for rule in rules:
        try:
            result = compile_rule(rule.expression).execute(dict(activation))
        except Exception:
            result = None
        if result is True:
            fired.append(Fired(rule.name, rule.version, rule.outcome, rule.score, rule.shadow))
        elif result is not False:
            fired.append(Fired(rule.name, rule.version, rule.on_error, 0, rule.shadow, "x"))
    return decide(fired)


def _summary(evaluation: Evaluation) -> tuple[Any, ...]:
    fired = [(f.rule, f.outcome, f.score, f.error is not None) for f in evaluation.fired]
    return evaluation.outcome, evaluation.score, fired


@pytest.mark.parametrize("extra", list(_EXTRA))
@given(activation=_ACTIVATIONS)
def test_fields_read_apart_give_each_rule_its_own_verdict(
    extra: str, activation: dict[str, Any]
) -> None:
    rules = [*_TRICKY, *_EXTRA[extra]]
    rule_set = RuleSet(rules)
    trimmed = rule_set.trim(activation)
    if extra != "a missing field":  # the one program runs: its answers are the ones compared
        assert rule_set._all is not None
        rule_set._all.execute(rule_set._variables(trimmed))
    got = rule_set.evaluate(trimmed, error_outcome="review")
    assert _summary(got) == _summary(_one_by_one(rules, activation))


def test_fields_read_apart_are_what_the_one_program_is_handed() -> None:
    """The default-like rules read five fields: the program gets five scalars, no maps."""
    rule_set = RuleSet(
        [
            _rule("big", "features.new_beneficiary && txn.amount >= 200000", "challenge"),
            _rule("listed", "lists.deny"),
            _rule("literal", 'txn.currency == "lists.watch"'),
        ]
    )
    handed = rule_set._variables(rule_set.trim(sample_activation()))
    assert handed == {
        "features__new_beneficiary": False,
        "txn__amount": 100,
        "txn__currency": "CNY",
        "lists__deny": False,
        "lists__watch": False,
    }
