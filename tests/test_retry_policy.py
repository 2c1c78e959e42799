"""The retry policy: backoff, Retry-After, the budget, the auth pause and what each creation
answer means. Pure: no clock, no socket, no randomness unless asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.platform_client import (
    AuthFailed,
    Created,
    NotCreated,
    RetryLater,
    Unknown,
    parse_retry_after,
)
from handlers.retry_policy import (
    Accept,
    AuthGate,
    CreationPolicy,
    Fail,
    Pause,
    RetryAt,
    RetryBudget,
    compute_backoff,
    retry_delay,
)

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def no_jitter() -> float:
    return 0.0


def full_jitter() -> float:
    return 0.999999


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (8, 128.0), (9, 256.0), (10, 300.0), (10_000, 300.0)],
)
def test_the_delay_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert compute_backoff(attempt, rand=no_jitter) == delay


@pytest.mark.parametrize(
    ("kwargs", "delay"),
    [
        ({"base": 5.0}, 20.0),
        ({"factor": 3.0}, 9.0),
        ({"factor": 1.0}, 1.0),
        ({"max_delay": 3.0}, 3.0),
        ({"factor": 1e300, "max_delay": 60.0}, 60.0),
    ],
)
def test_the_shape_is_configurable(kwargs: dict, delay: float) -> None:
    assert compute_backoff(3, rand=no_jitter, **kwargs) == delay


@pytest.mark.parametrize(("jitter", "lowest"), [(0.5, 2.0), (0.0, 4.0), (1.0, 0.0)])
def test_jitter_only_shortens_the_delay(jitter: float, lowest: float) -> None:
    assert compute_backoff(3, jitter=jitter, rand=no_jitter) == 4.0
    assert compute_backoff(3, jitter=jitter, rand=full_jitter) == pytest.approx(lowest, abs=1e-5)


@given(attempt=st.integers(min_value=1, max_value=10_000))
def test_the_delay_stays_between_half_and_the_cap(attempt: int) -> None:
    delay = compute_backoff(attempt)
    exponential = min(2.0 ** min(attempt - 1, 64), 300.0)

    assert exponential / 2 <= delay <= exponential


def test_jitter_spreads_retries() -> None:
    assert len({compute_backoff(5) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": 1, "base": 0},
        {"attempt": 1, "factor": 0.5},
        {"attempt": 1, "max_delay": -1},
        {"attempt": 1, "jitter": 1.5},
    ],
)
def test_nonsense_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        compute_backoff(**kwargs)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "delay"),
    [
        (1, None, 1.0),
        (1, 30.0, 30.0),
        (6, 2.0, 32.0),
        (1, 0.0, 1.0),
        (1, 86_400.0, 3600.0),
    ],
    ids=["no-header", "header-longer", "backoff-longer", "header-zero", "header-capped"],
)
def test_retry_after_is_a_floor(attempt: int, retry_after: float | None, delay: float) -> None:
    assert retry_delay(attempt, retry_after=retry_after, rand=no_jitter) == delay


def test_retry_delay_passes_the_backoff_shape_on() -> None:
    assert retry_delay(2, retry_after=None, base=10.0, rand=no_jitter) == 20.0
    assert retry_delay(1, retry_after=500.0, max_retry_after=120.0, rand=no_jitter) == 120.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Tue, 01 Dec 2026 09:01:30 GMT", 90.0),
        ("Tuesday, 01-Dec-26 09:00:10 GMT", 10.0),
        ("Tue Dec  1 09:00:05 2026", 5.0),
        ("Tue, 01 Dec 2026 08:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("1e3", None),
        ("inf", None),
        ("Tue, 99 Dec 2026 09:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_parse_retry_after_uses_the_clock_by_default() -> None:
    in_the_past = "Thu, 01 Jan 2015 00:00:00 GMT"

    assert parse_retry_after(in_the_past) == 0.0


# -- the budget ------------------------------------------------------------------------------


def test_the_budget_gives_the_next_try_until_it_is_spent() -> None:
    budget = RetryBudget(timedelta(minutes=10))
    start = NOW

    first = budget.next_try(1, since=start, now=start, retry_after=None, rand=no_jitter)
    late = budget.next_try(
        1,
        since=start,
        now=start + timedelta(minutes=9, seconds=59.5),
        retry_after=None,
        rand=no_jitter,
    )

    assert first == start + timedelta(seconds=1)
    assert late is None, "a try that would land past the budget is not scheduled"


def test_retry_after_counts_against_the_budget() -> None:
    budget = RetryBudget(timedelta(minutes=1))

    assert budget.next_try(1, since=NOW, now=NOW, retry_after=120.0, rand=no_jitter) is None
    assert budget.next_try(
        1, since=NOW, now=NOW, retry_after=30.0, rand=no_jitter
    ) == NOW + timedelta(seconds=30)


def test_an_unbounded_failure_is_always_tried_again() -> None:
    budget = RetryBudget(timedelta(minutes=1), max_delay=30.0)
    long_after = NOW + timedelta(days=3)

    when = budget.next_try(
        50, since=NOW, now=long_after, retry_after=None, bounded=False, rand=no_jitter
    )

    assert when == long_after + timedelta(seconds=30)


# -- the auth pause --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_auth_pause_doubles_up_to_its_cap_and_ends_on_acceptance() -> None:
    clock = FakeClock()
    gate = AuthGate(first_pause=5.0, max_pause=30.0, clock=clock)
    pauses = []

    assert gate.allows()
    assert gate.refused() is True, "the first refusal starts a pause"
    for _ in range(5):
        pauses.append(gate.seconds_left())
        assert not gate.allows()
        clock.now += gate.seconds_left()
        assert gate.allows(), "the pause is over: time to try again"
        assert gate.refused() is False, "a refusal within a pause is not a new pause"

    assert pauses == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert gate.accepted() is True
    assert gate.allows() and gate.seconds_left() == 0
    assert gate.accepted() is False, "only the first acceptance ends a pause"


def test_a_refusal_of_another_thread_during_the_pause_does_not_lengthen_it() -> None:
    clock = FakeClock()
    gate = AuthGate(first_pause=5.0, clock=clock)
    gate.refused()
    clock.now += 1

    assert gate.refused() is False
    assert gate.seconds_left() == 4.0


# -- what each creation answer means ---------------------------------------------------------


def policy(minutes: float = 60, clock: FakeClock | None = None) -> CreationPolicy:
    gate = AuthGate(clock=clock or FakeClock())
    return CreationPolicy(budget=RetryBudget(timedelta(minutes=minutes)), gate=gate)


def decide(policy: CreationPolicy, outcome, *, attempt: int = 1, started: datetime = NOW):
    return policy.decide(outcome, attempt=attempt, first_attempt_at=started, now=NOW)


def test_a_created_campaign_is_accepted() -> None:
    assert decide(policy(), Created(12345)) == Accept(12345)


@pytest.mark.parametrize("status", [None, 429, 503])
def test_nothing_created_is_retried_within_the_budget(status: int | None) -> None:
    decision = decide(policy(), RetryLater(status, "busy", None))

    assert isinstance(decision, RetryAt)
    assert NOW < decision.when <= NOW + timedelta(seconds=1)
    assert (decision.status, decision.message) == (status, "busy")


def test_retry_after_longer_than_the_backoff_is_honoured() -> None:
    decision = decide(policy(), RetryLater(429, "slow down", 45.0))

    assert decision == RetryAt(NOW + timedelta(seconds=45), 429, "slow down")


def test_a_spent_budget_ends_not_created_naming_the_wait() -> None:
    decision = decide(
        policy(minutes=60),
        RetryLater(503, "down", None),
        attempt=12,
        started=NOW - timedelta(hours=1),
    )

    assert isinstance(decision, Fail)
    assert decision.outcome == "not_created"
    assert decision.message == "the platform stayed unavailable for 60 minutes (12 attempts): down"


def test_a_refusal_ends_not_created_and_a_possible_campaign_unknown() -> None:
    assert decide(policy(), NotCreated(422, "bad phone_id")) == Fail(
        "not_created", 422, "bad phone_id"
    )
    assert decide(policy(), Unknown(502, "Bad Gateway")) == Fail("unknown", 502, "Bad Gateway")
    assert decide(policy(), Unknown(None, "read timeout")) == Fail("unknown", None, "read timeout")


def test_a_refused_token_pauses_once_and_an_answer_past_it_resumes() -> None:
    clock = FakeClock()
    creation = policy(clock=clock)

    first = decide(creation, AuthFailed(401, "Unauthenticated."))
    second = decide(creation, AuthFailed(401, "Unauthenticated."))
    clock.now += 5
    third = decide(creation, AuthFailed(403, "Forbidden"))
    resumed = decide(creation, NotCreated(422, "bad phone_id"))

    assert first == Pause(401, "Unauthenticated.", starts_pause=True, seconds=5.0)
    assert second.starts_pause is False, "one report per pause"
    assert third == Pause(403, "Forbidden", starts_pause=False, seconds=10.0)
    assert resumed == Fail("not_created", 422, "bad phone_id", resumed=True)
    assert decide(creation, Created(1)) == Accept(1, resumed=False)


def test_an_answer_that_says_nothing_of_the_token_does_not_end_the_pause() -> None:
    creation = policy()
    decide(creation, AuthFailed(401, "Unauthenticated."))

    decide(creation, RetryLater(503, "proxy says no", None))
    decide(creation, Unknown(None, "connection reset"))

    assert not creation.gate.allows()
