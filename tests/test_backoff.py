"""The retry policy as pure functions: no clock, no randomness unless asked for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.platform_client import parse_retry_after
from handlers.retry_policy import compute_backoff, retry_delay

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
