from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from mamba_worker.errors import UsageError
from mamba_worker.tokens import CostEstimator, ModelPrice, PriceSource, UsageTracker

COST_LOG = "mamba_worker.tokens._cost"


def genai_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), model)
    return float(price.total_price)


def test_gpt_4o_is_priced_by_genai_prices() -> None:
    cost = CostEstimator().estimate(input_tokens=1000, output_tokens=500, model="gpt-4o")

    assert cost > 0
    assert cost == pytest.approx(genai_cost("gpt-4o", 1000, 500))


def test_breakdown_splits_prompt_and_completion() -> None:
    breakdown = CostEstimator().estimate_breakdown(input_tokens=1000, output_tokens=500, model="gpt-4o")

    price = calc_price(Usage(input_tokens=1000, output_tokens=500), "gpt-4o")
    assert breakdown.prompt_cost == pytest.approx(float(price.input_price))
    assert breakdown.completion_cost == pytest.approx(float(price.output_price))
    assert breakdown.total_cost == pytest.approx(float(price.total_price))
    assert (breakdown.priced, breakdown.source, breakdown.model) == (True, PriceSource.GENAI_PRICES, "gpt-4o")


@pytest.mark.parametrize(
    ("model", "bare"),
    [
        ("openai:gpt-4o", "gpt-4o"),
        ("openai-responses:gpt-4o", "gpt-4o"),
        ("gateway/openai:gpt-4o", "gpt-4o"),
        ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5"),
    ],
)
def test_provider_prefix_is_understood(model: str, bare: str) -> None:
    estimator = CostEstimator()

    prefixed = estimator.estimate(input_tokens=1000, output_tokens=500, model=model)

    assert prefixed > 0
    assert prefixed == pytest.approx(genai_cost(bare, 1000, 500))


def test_cache_reads_are_cheaper_than_fresh_input() -> None:
    estimator = CostEstimator()

    fresh = estimator.estimate_breakdown(input_tokens=100_000, output_tokens=0, model="gpt-4o")
    cached = estimator.estimate_breakdown(
        input_tokens=100_000, output_tokens=0, model="gpt-4o", cache_read_tokens=100_000
    )

    assert 0 < cached.prompt_cost < fresh.prompt_cost


def test_tiered_prices_apply_to_the_average_request_not_the_sum() -> None:
    estimator = CostEstimator()
    model = "anthropic:claude-sonnet-4-5"
    one = estimator.estimate(input_tokens=100_000, output_tokens=0, model=model)
    one_big = estimator.estimate(input_tokens=1_000_000, output_tokens=0, model=model)

    ten = estimator.estimate_breakdown(input_tokens=1_000_000, output_tokens=0, model=model, request_count=10)

    assert ten.total_cost == pytest.approx(10 * one)
    assert one_big > 10 * one  # the long-context tier, which ten 100k requests never reach


def test_override_wins_over_genai_prices() -> None:
    estimator = CostEstimator(overrides={"gpt-4o": ModelPrice(input_per_million=1.0, output_per_million=2.0)})

    breakdown = estimator.estimate_breakdown(input_tokens=1_000_000, output_tokens=500_000, model="gpt-4o")

    assert (breakdown.prompt_cost, breakdown.completion_cost, breakdown.total_cost) == (1.0, 1.0, 2.0)
    assert breakdown.source is PriceSource.OVERRIDE


def test_override_by_bare_name_applies_to_prefixed_model() -> None:
    estimator = CostEstimator(overrides={"gpt-4o": ModelPrice(input_per_million=1.0, output_per_million=2.0)})

    assert estimator.estimate(input_tokens=1_000_000, output_tokens=0, model="openai:gpt-4o") == 1.0


def test_override_prices_an_unknown_model() -> None:
    estimator = CostEstimator(overrides={"my-model": ModelPrice(input_per_million=3, output_per_million=6)})

    breakdown = estimator.estimate_breakdown(input_tokens=2_000_000, output_tokens=1_000_000, model="my-model")

    assert (breakdown.total_cost, breakdown.priced) == (12.0, True)


def test_negative_model_price_is_refused() -> None:
    with pytest.raises(UsageError, match="negative"):
        ModelPrice(input_per_million=-1, output_per_million=0)


@pytest.mark.parametrize(
    "model",
    [
        "ollama:llama3.2",
        "vllm:meta-llama/Llama-3.1-8B-Instruct",
        "lmstudio:qwen2.5-7b-instruct",
        "offline",
        "test",
        "function:model_function:",
        "llama3.2:3b",
        "mistral:7b",
        "qwen2.5-coder",
        "ollama:gpt-4o",  # a local server serving any name still costs nothing
    ],
)
def test_local_models_cost_nothing(model: str) -> None:
    breakdown = CostEstimator().estimate_breakdown(input_tokens=10_000, output_tokens=10_000, model=model)

    assert (breakdown.total_cost, breakdown.priced, breakdown.source) == (0.0, True, PriceSource.LOCAL)


def test_paid_api_model_of_a_local_family_is_priced() -> None:
    assert CostEstimator().estimate(input_tokens=1000, output_tokens=1000, model="mistral-large-latest") > 0


def test_configured_local_models_and_providers() -> None:
    estimator = CostEstimator(local_models=["acme-*"], local_providers=["my-server"])

    assert estimator.estimate_breakdown(input_tokens=1, output_tokens=1, model="acme-7b").source is PriceSource.LOCAL
    assert (
        estimator.estimate_breakdown(input_tokens=1, output_tokens=1, model="my-server:x").source is PriceSource.LOCAL
    )
    # The defaults are replaced, not extended:
    assert estimator.estimate_breakdown(input_tokens=1, output_tokens=1, model="ollama:x").priced is False


def test_family_guess_can_be_turned_off() -> None:
    breakdown = CostEstimator(guess_local_families=False).estimate_breakdown(
        input_tokens=1, output_tokens=1, model="llama3.2:3b"
    )

    assert breakdown.priced is False


def test_unknown_model_is_zero_unpriced_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    estimator = CostEstimator()

    first = estimator.estimate_breakdown(input_tokens=1000, output_tokens=1000, model="acme:unheard-of-model")
    estimator.estimate_breakdown(input_tokens=5, output_tokens=5, model="acme:unheard-of-model")

    assert (first.total_cost, first.priced, first.source) == (0.0, False, PriceSource.UNKNOWN)
    warnings = [r for r in caplog.records if r.name == COST_LOG and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'acme:unheard-of-model'" in warnings[0].getMessage()


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(UsageError, match="input_tokens"):
        CostEstimator().estimate(input_tokens=-1, output_tokens=0, model="gpt-4o")


def test_summary_is_priced_per_model_and_summed() -> None:
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=1000, output_tokens=500, model="gpt-4o")
    tracker.record_usage(input_tokens=2000, output_tokens=100, model="openai:gpt-4o-mini")
    tracker.record_usage(input_tokens=9999, output_tokens=9999, model="ollama:llama3.2")
    estimator = CostEstimator()

    breakdown = estimator.estimate_summary(tracker.get_summary())

    expected = genai_cost("gpt-4o", 1000, 500) + genai_cost("gpt-4o-mini", 2000, 100)
    assert breakdown.total_cost == pytest.approx(expected)
    assert breakdown.prompt_cost + breakdown.completion_cost == pytest.approx(breakdown.total_cost)
    assert (breakdown.model, breakdown.priced, breakdown.source) == (None, True, None)
    assert set(breakdown.by_model) == {"gpt-4o", "openai:gpt-4o-mini", "ollama:llama3.2"}
    assert breakdown.by_model["ollama:llama3.2"].total_cost == 0.0


def test_an_unknown_model_is_searched_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from mamba_worker.tokens import _cost

    lookups: list[str] = []

    def counted(usage: Usage, model_ref: str, **kwargs: object) -> object:
        lookups.append(model_ref)
        return calc_price(usage, model_ref, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_cost, "calc_price", counted)
    estimator = CostEstimator()
    estimator.estimate_breakdown(input_tokens=10, output_tokens=10, model="acme:unheard-of-model")
    searched = len(lookups)

    again = estimator.estimate_breakdown(input_tokens=20, output_tokens=20, model="acme:unheard-of-model")
    priced = estimator.estimate_breakdown(input_tokens=20, output_tokens=20, model="gpt-4o")

    assert searched > 0 and len(lookups) == searched + 1  # only gpt-4o's
    assert (again.total_cost, again.priced, again.source) == (0.0, False, PriceSource.UNKNOWN)
    assert priced.priced and priced.total_cost > 0


def test_summary_with_an_unknown_model_is_not_fully_priced() -> None:
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=1000, output_tokens=500, model="gpt-4o")
    tracker.record_usage(input_tokens=1000, output_tokens=500, model="acme:mystery")

    breakdown = CostEstimator().estimate_summary(tracker.get_summary())

    assert breakdown.priced is False
    assert breakdown.total_cost == pytest.approx(genai_cost("gpt-4o", 1000, 500))


def test_empty_summary_costs_nothing() -> None:
    breakdown = CostEstimator().estimate_summary(UsageTracker().get_summary())

    assert (breakdown.total_cost, breakdown.priced, breakdown.by_model) == (0.0, True, {})


def test_costs_are_exact_decimal_arithmetic_for_overrides() -> None:
    estimator = CostEstimator(overrides={"m": ModelPrice(input_per_million=0.1, output_per_million=0.2)})

    cost = estimator.estimate(input_tokens=3, output_tokens=0, model="m")

    assert cost == float(Decimal("0.1") * 3 / 1_000_000)
