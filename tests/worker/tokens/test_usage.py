from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic_ai.usage import RequestUsage, RunUsage

from mamba_worker.errors import UsageError
from mamba_worker.tokens import UNKNOWN_MODEL, ModelUsage, UsageTracker


def test_summary_totals_and_aliases() -> None:
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=100, output_tokens=50, model="gpt-4o")
    tracker.record_usage(input_tokens=10, output_tokens=5, model="gpt-4o")

    summary = tracker.get_summary()

    assert (summary.input_tokens, summary.output_tokens, summary.total_tokens, summary.request_count) == (
        110,
        55,
        165,
        2,
    )
    assert (summary.prompt_tokens, summary.completion_tokens) == (110, 55)


def test_summary_breaks_usage_down_per_model() -> None:
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=100, output_tokens=50, model="gpt-4o")
    tracker.record_usage(input_tokens=7, output_tokens=3, model="ollama:llama3.2")
    tracker.record_usage(input_tokens=1, output_tokens=1, model="gpt-4o")
    tracker.record_usage(input_tokens=2, output_tokens=2)

    by_model = tracker.get_summary().by_model

    assert by_model == {
        "gpt-4o": ModelUsage(model="gpt-4o", input_tokens=101, output_tokens=51, request_count=2),
        "ollama:llama3.2": ModelUsage(model="ollama:llama3.2", input_tokens=7, output_tokens=3, request_count=1),
        UNKNOWN_MODEL: ModelUsage(model=UNKNOWN_MODEL, input_tokens=2, output_tokens=2, request_count=1),
    }
    assert by_model["gpt-4o"].total_tokens == 152


def test_history_has_one_record_per_call_with_utc_timestamps_in_order() -> None:
    tracker = UsageTracker()
    before = datetime.now(UTC)
    tracker.record_usage(input_tokens=1, output_tokens=2, model="a")
    tracker.record_usage(input_tokens=3, output_tokens=4, model="b")
    after = datetime.now(UTC)

    first, second = tracker.get_history()

    assert (first.model, first.total_tokens, second.model, second.total_tokens) == ("a", 3, "b", 7)
    assert before <= first.timestamp <= second.timestamp <= after
    assert first.timestamp.utcoffset() == timedelta(0)


def test_record_returns_the_record_it_stored() -> None:
    tracker = UsageTracker()

    record = tracker.record_usage(input_tokens=1, output_tokens=2, model="a")

    assert tracker.get_history() == [record]


def test_explicit_timestamp_is_kept_in_utc() -> None:
    tracker = UsageTracker()
    when = datetime(2025, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    record = tracker.record_usage(input_tokens=1, output_tokens=1, timestamp=when)

    assert record.timestamp == when
    assert record.timestamp.tzinfo is UTC


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        UsageTracker().record_usage(input_tokens=1, output_tokens=1, timestamp=datetime(2025, 1, 1))


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "request_count"])
def test_negative_counts_are_refused(field: str) -> None:
    values = {"input_tokens": 1, "output_tokens": 1, "request_count": 1, field: -1}

    with pytest.raises(UsageError, match=field):
        UsageTracker().record_usage(**values)


def test_request_usage_from_pydantic_ai_is_one_request_with_cache_tokens() -> None:
    tracker = UsageTracker()

    record = tracker.record_run_usage(
        RequestUsage(input_tokens=120, output_tokens=30, cache_read_tokens=100, cache_write_tokens=20), model="gpt-4o"
    )

    assert (record.input_tokens, record.output_tokens, record.request_count) == (120, 30, 1)
    assert (record.cache_read_tokens, record.cache_write_tokens) == (100, 20)
    assert tracker.get_summary().cache_read_tokens == 100


def test_run_usage_from_pydantic_ai_keeps_its_request_count() -> None:
    tracker = UsageTracker()

    tracker.record_run_usage(RunUsage(requests=3, input_tokens=300, output_tokens=90), model="gpt-4o")

    assert tracker.get_summary().by_model["gpt-4o"].request_count == 3


def test_reset_forgets_everything() -> None:
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=1, output_tokens=1, model="a")

    tracker.reset()

    assert tracker.get_history() == []
    assert tracker.get_summary().total_tokens == 0
    assert tracker.get_summary().by_model == {}


def test_max_history_trims_records_but_not_totals() -> None:
    tracker = UsageTracker(max_history=2)
    for i in range(5):
        tracker.record_usage(input_tokens=i, output_tokens=0, model="a")

    assert [r.input_tokens for r in tracker.get_history()] == [3, 4]
    assert tracker.get_summary().input_tokens == 10


def test_max_history_must_be_positive() -> None:
    with pytest.raises(UsageError, match="max_history"):
        UsageTracker(max_history=0)


def test_concurrent_records_are_all_counted() -> None:
    tracker = UsageTracker()

    def work(model: str) -> None:
        for _ in range(500):
            tracker.record_usage(input_tokens=2, output_tokens=1, model=model)

    threads = [threading.Thread(target=work, args=(f"m{i % 2}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    summary = tracker.get_summary()
    assert (summary.request_count, summary.input_tokens, summary.output_tokens) == (4000, 8000, 4000)
    assert summary.by_model["m0"].request_count == 2000
    assert len(tracker.get_history()) == 4000
