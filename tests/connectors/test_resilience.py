"""Timeouts, retries and the circuit breaker around the http connector, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from channelhub.connectors.base import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from channelhub.connectors.settings import (
    BreakerSettings,
    ConnectorSettings,
    OperationSettings,
)
from channelhub.governance.breaker import CircuitBreaker
from channelhub.governance.registry import BackendRegistry
from channelhub.governance.resilience import ResilientConnector, RetryPolicy
from tests.connectors.http_backend import DroppingServer, RestBackend, rest_backend

OPERATIONS = {
    "inquiry": OperationSettings(idempotent=True, method="POST", path="/flaky"),
    "debit": OperationSettings(idempotent=False, method="POST", path="/flaky"),
    "slow_inquiry": OperationSettings(idempotent=True, method="POST", path="/slow"),
    "slow_debit": OperationSettings(idempotent=False, method="POST", path="/slow"),
    "echo": OperationSettings(method="POST", path="/echo"),
    "refuse": OperationSettings(method="POST", path="/refuse"),
}


#: Three failures in a row open the circuit of a back end made with these.
TRIPS_AT_3 = BreakerSettings(failure_threshold=3, recovery_seconds=0.3)


def settings(url: str, **overrides: Any) -> ConnectorSettings:
    values: dict[str, Any] = {
        "kind": "http",
        "url": url,
        "timeout_ms": 5_000,
        "retries": 3,
        "retry_backoff_ms": 1,
        "retry_max_ms": 5,
        "breaker": BreakerSettings(failure_threshold=10, recovery_seconds=0.3),
        "operations": OPERATIONS,
    }
    return ConnectorSettings.model_validate(values | overrides)


@pytest.fixture
async def backend() -> AsyncIterator[RestBackend]:
    async with rest_backend() as running:
        yield running


@pytest.fixture
async def core(backend: RestBackend) -> AsyncIterator[ResilientConnector]:
    registry = BackendRegistry({"core": settings(backend.url)})
    yield registry.get("core")
    await registry.close()


def metric(name: str, labels: Mapping[str, str]) -> float:
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


async def test_an_idempotent_operation_is_retried_until_it_answers(
    core: ResilientConnector, backend: RestBackend
) -> None:
    backend.failures_left = 2
    before = metric("channelhub_backend_retries_total", {"backend": "core", "operation": "inquiry"})
    assert await core.call("inquiry", {"account": "1"}) == {"ok": True}
    assert backend.requests["/flaky"] == 3
    after = metric("channelhub_backend_retries_total", {"backend": "core", "operation": "inquiry"})
    assert after - before == 2


async def test_retries_are_bounded(core: ResilientConnector, backend: RestBackend) -> None:
    backend.failures_left = 100
    with pytest.raises(BackendUnavailable):
        await core.call("inquiry", {})
    assert backend.requests["/flaky"] == 1 + 3


async def test_a_money_changing_operation_is_never_retried(
    core: ResilientConnector, backend: RestBackend
) -> None:
    backend.failures_left = 1
    with pytest.raises(BackendUnavailable):
        await core.call("debit", {"amount": "10.00"})
    assert backend.requests["/flaky"] == 1


async def test_a_timed_out_debit_is_sent_once_and_left_in_doubt(
    core: ResilientConnector, backend: RestBackend
) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(BackendTimeout) as caught:
            await core.call("slow_debit", {"amount": "10.00"}, timeout=0.2)
    assert caught.value.in_doubt
    assert backend.requests["/slow"] == 1


async def test_a_timed_out_inquiry_is_retried(
    core: ResilientConnector, backend: RestBackend
) -> None:
    async with asyncio.timeout(20):
        with pytest.raises(BackendTimeout) as caught:
            await core.call("slow_inquiry", {}, timeout=0.1)
    assert not caught.value.in_doubt
    assert backend.requests["/slow"] == 1 + 3


async def test_the_wrapper_enforces_the_deadline_itself() -> None:
    class Sleepy:
        """A connector that forgets its deadline."""

        name = "sleepy"

        async def call(
            self,
            operation: str,
            request: Mapping[str, Any],
            *,
            timeout: float,  # noqa: ASYNC109 - the contract's signature
        ) -> Mapping[str, Any]:
            await asyncio.sleep(60)
            return {}

        async def close(self) -> None:
            return None

    wrapped = ResilientConnector(
        Sleepy(),
        breaker=CircuitBreaker("sleepy", failure_threshold=5, recovery_seconds=1),
        timeout=0.1,
        retry=RetryPolicy(retries=0),
    )
    async with asyncio.timeout(10):
        with pytest.raises(BackendTimeout) as caught:
            await wrapped.call("pay", {})
    assert caught.value.in_doubt  # undeclared operations count as money-changing


async def test_business_refusals_do_not_open_the_circuit(
    core: ResilientConnector, backend: RestBackend
) -> None:
    for _ in range(10):
        with pytest.raises(BackendRejected):
            await core.call("refuse", {})
    assert core.breaker.state == "closed"
    assert backend.requests["/refuse"] == 10


async def test_a_dead_back_end_is_cut_off_probed_and_restored() -> None:
    dead = DroppingServer()
    await dead.start()
    registry = BackendRegistry(
        {"core": settings(f"http://127.0.0.1:{dead.port}", retries=0, breaker=TRIPS_AT_3)}
    )
    core = registry.get("core")
    labels = {"backend": "core", "operation": "echo", "outcome": "circuit_open"}
    fast_before = metric("channelhub_backend_calls_total", labels)
    try:
        # Three failures in a row (the threshold) open the circuit.
        for _ in range(3):
            with pytest.raises(BackendUnavailable) as caught:
                await core.call("echo", {"n": 1})
            assert caught.value.details["reason"] != "circuit_open"
        assert core.breaker.state == "opened"
        assert metric("channelhub_backend_breaker_state", {"backend": "core"}) == 2
        reached = dead.connections
        assert reached >= 3

        # While open, calls fail fast with the canonical 503 code and never reach the network.
        for _ in range(20):
            with pytest.raises(BackendUnavailable) as caught:
                await core.call("echo", {"n": 1})
            assert caught.value.code == "BACKEND_UNAVAILABLE"
            assert caught.value.details["reason"] == "circuit_open"
            assert not caught.value.in_doubt
        assert dead.connections == reached
        assert metric("channelhub_backend_calls_total", labels) - fast_before == 20

        # The back end comes back on the same port; after the recovery time a probe passes
        # and its success closes the circuit.
        await dead.stop()
        async with rest_backend(dead.port) as alive:
            answer = None
            reasons = set()
            async with asyncio.timeout(10):
                while answer is None:
                    await asyncio.sleep(0.1)
                    try:
                        answer = await core.call("echo", {"n": 2})
                    except BackendUnavailable as error:
                        reasons.add(error.details["reason"])
            assert reasons <= {"circuit_open"}  # the first call let through was the probe
            assert answer["echo"] == {"n": 2}
            assert alive.requests["/echo"] == 1
            assert core.breaker.state == "closed"
            assert metric("channelhub_backend_breaker_state", {"backend": "core"}) == 0
            assert await core.call("echo", {"n": 3}) == {
                "echo": {"n": 3},
                "content_type": "application/json",
            }
    finally:
        await registry.close()


async def test_a_failed_probe_opens_the_circuit_again() -> None:
    dead = DroppingServer()
    await dead.start()
    registry = BackendRegistry(
        {"core": settings(f"http://127.0.0.1:{dead.port}", retries=0, breaker=TRIPS_AT_3)}
    )
    core = registry.get("core")
    try:
        for _ in range(3):
            with pytest.raises(BackendUnavailable):
                await core.call("echo", {})
        reached = dead.connections
        probed = False
        async with asyncio.timeout(10):
            while not probed:
                await asyncio.sleep(0.1)
                with pytest.raises(BackendUnavailable) as caught:
                    await core.call("echo", {})
                probed = caught.value.details["reason"] != "circuit_open"
        assert dead.connections == reached + 1  # exactly one probe went out
        assert core.breaker.state == "opened"
    finally:
        await registry.close()
        await dead.stop()


async def test_only_one_probe_at_a_time() -> None:
    breaker = CircuitBreaker("probe", failure_threshold=1, recovery_seconds=0.05)

    async def fail() -> None:
        raise BackendTimeout("no", backend="probe", operation="x")

    with pytest.raises(BackendTimeout):
        await breaker.call("x", fail)
    assert breaker.state == "opened"
    await asyncio.sleep(0.2)

    release = asyncio.Event()
    entered = 0

    async def slow_probe() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    probe = asyncio.create_task(breaker.call("x", slow_probe))
    await asyncio.sleep(0)
    assert breaker.state == "half-opened"
    for _ in range(5):
        with pytest.raises(BackendUnavailable):
            await breaker.call("x", slow_probe)
    release.set()
    assert await probe == "ok"
    assert entered == 1
    assert breaker.state == "closed"


def test_the_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(retries=5, backoff_seconds=0.1, max_backoff_seconds=0.3)
    for retry in range(1, 6):
        ceiling = min(0.3, 0.1 * 2 ** (retry - 1))
        assert all(0 <= policy.pause(retry) <= ceiling for _ in range(50))
