"""``lab.netns.wait_for``: retries a failing predicate, but a timeout shows the last failure."""

from __future__ import annotations

import pytest

from lab.netns import wait_for


def test_a_predicate_that_always_raises_times_out_caused_by_its_error() -> None:
    def broken() -> bool:
        raise KeyError("no such neighbor")

    with pytest.raises(TimeoutError) as timed_out:
        wait_for(broken, timeout=0.2, interval=0.01, what="the neighbor")
    assert isinstance(timed_out.value.__cause__, KeyError)
    assert "the neighbor" in str(timed_out.value)
    assert "KeyError('no such neighbor')" in str(timed_out.value)


def test_a_predicate_that_raises_then_succeeds_returns_its_value() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("not listening yet")
        return "up"

    assert wait_for(flaky, timeout=5, interval=0.01) == "up"
    assert len(attempts) == 3


def test_a_falsy_last_attempt_times_out_with_its_value_and_no_stale_cause() -> None:
    attempts: list[int] = []

    def raises_once_then_empty() -> list[str]:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("first attempt")
        return []

    with pytest.raises(TimeoutError) as timed_out:
        wait_for(raises_once_then_empty, timeout=0.2, interval=0.01)
    assert timed_out.value.__cause__ is None
    assert str(timed_out.value).endswith(": []")
    assert len(attempts) > 1
