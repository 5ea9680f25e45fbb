"""`CostEstimator`: what tokens cost, from genai-prices, user overrides, or nothing for local models.

How a model string is priced, first match wins:

1. An override for the exact string, then for its bare name (``"openai:gpt-4o"`` -> ``"gpt-4o"``).
2. Local (zero cost): a provider prefix in ``local_providers`` (``ollama:``, ``vllm:``,
   ``lmstudio:``, ``test``, ``function``, ...), or a name matching a ``local_models`` pattern.
3. genai-prices: the bare name with the provider prefix as its provider, then without it.
4. Local by family name: a model string genai-prices does not know that starts like a model people
   run themselves (``llama3.2:3b``, ``qwen2.5-coder``, ``mistral:7b``, ``gemma``, ``phi``, ...).
   Paid API models of the same families (``mistral-large-latest``) are known to genai-prices and
   priced in step 3, so only self-hosted names reach this step.
5. Unknown: zero, with ``priced=False`` so a caller can say "price unknown", and a warning logged
   once per model.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from genai_prices import Usage, calc_price

from mamba_worker.errors import UsageError
from mamba_worker.tokens._usage import UsageSummary

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_PROVIDERS: frozenset[str] = frozenset(
    {"ollama", "vllm", "lmstudio", "lm-studio", "llamacpp", "llama-cpp", "localai", "offline", "test", "function"}
)
"""Provider prefixes (``"ollama:llama3.2"``) and whole names (``"test"``) that cost nothing."""

_LOCAL_FAMILIES: tuple[str, ...] = (
    "llama",
    "codellama",
    "tinyllama",
    "qwen",
    "mistral",
    "mixtral",
    "gemma",
    "phi",
    "deepseek-r1",
    "deepseek-coder",
    "granite",
    "smollm",
    "starcoder",
    "olmo",
    "falcon",
    "vicuna",
)
# pydantic-ai provider names that genai-prices spells differently.
_PROVIDER_ALIASES: dict[str, str] = {"openai-chat": "openai", "openai-responses": "openai", "grok": "xai"}
_MILLION = Decimal(1_000_000)


class PriceSource(StrEnum):
    """Where a price came from."""

    OVERRIDE = "override"
    """A `ModelPrice` given to the `CostEstimator`."""
    GENAI_PRICES = "genai-prices"
    """The genai-prices database bundled with the installed package."""
    LOCAL = "local"
    """A local model: free."""
    UNKNOWN = "unknown"
    """No price was found; the cost shows as zero."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """A user's price for a model, in US dollars per million tokens."""

    input_per_million: float
    """Dollars per million input (prompt) tokens."""
    output_per_million: float
    """Dollars per million output (completion) tokens."""

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise UsageError(f"A ModelPrice must not be negative, got {self!r}.")


@dataclass(frozen=True, kw_only=True, slots=True)
class CostBreakdown:
    """An estimated cost in US dollars, split into prompt and completion.

    For one model, `source` says where the price came from. For a `UsageSummary`, `model` and
    `source` are ``None`` and `by_model` holds each model's breakdown.
    """

    model: str | None
    """The model priced, or ``None`` for a sum over several models."""
    prompt_cost: float = 0.0
    """Cost of the input tokens."""
    completion_cost: float = 0.0
    """Cost of the output tokens."""
    priced: bool = True
    """False when a model's price is unknown, so its cost shows as zero but is not known to be."""
    source: PriceSource | None = None
    """Where the price came from; ``None`` for a sum over models."""
    by_model: dict[str, CostBreakdown] = field(default_factory=dict)
    """Each model's breakdown, for a sum over a `UsageSummary`; empty for a single model."""

    @property
    def total_cost(self) -> float:
        """Prompt plus completion cost."""
        return self.prompt_cost + self.completion_cost


class CostEstimator:
    """Estimates what tokens cost, in US dollars.

    Example:
        ```python
        estimator = CostEstimator(overrides={"my-model": ModelPrice(input_per_million=1, output_per_million=2)})
        estimator.estimate(input_tokens=1000, output_tokens=500, model="gpt-4o")  # 0.0075
        estimator.estimate(input_tokens=1000, output_tokens=500, model="ollama:llama3.2")  # 0.0
        ```

    See the module docstring for the order prices are looked up in. Never raises for an unknown
    model. Thread-safe.
    """

    def __init__(
        self,
        *,
        overrides: Mapping[str, ModelPrice] | None = None,
        local_providers: Iterable[str] = DEFAULT_LOCAL_PROVIDERS,
        local_models: Iterable[str] = (),
        guess_local_families: bool = True,
    ) -> None:
        """Configure the prices.

        Args:
            overrides: Prices that win over genai-prices, by model string (``"openai:gpt-4o"``) or
                bare name (``"gpt-4o"``).
            local_providers: Provider prefixes, and whole model names, that are local and free.
            local_models: Glob patterns (``"my-finetune-*"``) of model names that are local and free,
                matched against the whole string and the bare name.
            guess_local_families: Treat names genai-prices does not know that start like a
                self-hosted model family (``llama``, ``qwen``, ``mistral``, ...) as local.
        """
        self._overrides = dict(overrides or {})
        self._local_providers = frozenset(p.lower() for p in local_providers)
        self._local_models = tuple(local_models)
        self._guess_local_families = guess_local_families
        self._warned: set[str] = set()
        """Models found in no price source: every call would search genai-prices again and again find
        nothing (three lookups over every provider's models, a tenth of a millisecond), so the
        answer is kept. The sources do not change in a process (the configuration is this object's,
        genai-prices' data is the installed package's)."""
        self._warned_lock = threading.Lock()

    def estimate(self, *, input_tokens: int, output_tokens: int, model: str) -> float:
        """Estimated cost of one request's tokens, in US dollars (0.0 for local or unknown models)."""
        return self.estimate_breakdown(input_tokens=input_tokens, output_tokens=output_tokens, model=model).total_cost

    def estimate_breakdown(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        model: str,
        request_count: int = 1,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> CostBreakdown:
        """Estimated cost of some tokens, split into prompt and completion.

        Args:
            input_tokens: Prompt tokens, cached ones included.
            output_tokens: Completion tokens.
            model: The model string (``"gpt-4o"``, ``"openai:gpt-4o"``, ``"ollama:llama3.2"``).
            request_count: How many requests the tokens are spread over. Prices with tiers (some
                models cost more above 200k prompt tokens per request) are applied to the average
                request, so summed usage is not billed at the top tier.
            cache_read_tokens: Prompt tokens read from the provider's cache (often cheaper).
            cache_write_tokens: Prompt tokens written to the provider's cache.

        Raises:
            UsageError: A count is negative.
        """
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("request_count", request_count),
            ("cache_read_tokens", cache_read_tokens),
            ("cache_write_tokens", cache_write_tokens),
        ):
            if value < 0:
                raise UsageError(f"{name} must not be negative, got {value!r}.")
        if model in self._warned:
            return CostBreakdown(model=model, priced=False, source=PriceSource.UNKNOWN)
        provider, bare = _split_model(model)

        override = self._overrides.get(model) or self._overrides.get(bare)
        if override is not None:
            return CostBreakdown(
                model=model,
                prompt_cost=float(Decimal(str(override.input_per_million)) * input_tokens / _MILLION),
                completion_cost=float(Decimal(str(override.output_per_million)) * output_tokens / _MILLION),
                source=PriceSource.OVERRIDE,
            )
        if self._is_declared_local(model, provider, bare):
            return CostBreakdown(model=model, source=PriceSource.LOCAL)

        requests = max(request_count, 1)
        usage = Usage(
            input_tokens=_per_request(input_tokens, requests),
            output_tokens=_per_request(output_tokens, requests),
            cache_read_tokens=_per_request(cache_read_tokens, requests),
            cache_write_tokens=_per_request(cache_write_tokens, requests),
        )
        prices = _genai_price(usage, model=model, provider=provider, bare=bare)
        if prices is not None:
            prompt, completion = prices
            return CostBreakdown(
                model=model,
                prompt_cost=float(prompt * requests),
                completion_cost=float(completion * requests),
                source=PriceSource.GENAI_PRICES,
            )
        # The whole string, so an Ollama tag ("mistral:7b") is a local name while an unknown model
        # behind an API provider ("groq:llama-9") is not.
        if self._guess_local_families and model.removeprefix("gateway/").lower().startswith(_LOCAL_FAMILIES):
            return CostBreakdown(model=model, source=PriceSource.LOCAL)
        self._warn_unknown(model)
        return CostBreakdown(model=model, priced=False, source=PriceSource.UNKNOWN)

    def estimate_summary(self, summary: UsageSummary) -> CostBreakdown:
        """Estimated cost of a `UsageSummary`: each model priced on its own, then summed.

        ``priced`` is False if any model's price is unknown.
        """
        by_model = {
            name: self.estimate_breakdown(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                model=name,
                request_count=usage.request_count,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
            for name, usage in summary.by_model.items()
        }
        return CostBreakdown(
            model=None,
            prompt_cost=sum(b.prompt_cost for b in by_model.values()),
            completion_cost=sum(b.completion_cost for b in by_model.values()),
            priced=all(b.priced for b in by_model.values()),
            by_model=by_model,
        )

    def _is_declared_local(self, model: str, provider: str | None, bare: str) -> bool:
        if provider is not None and provider.lower() in self._local_providers:
            return True
        if model.lower() in self._local_providers:  # whole names such as "test"
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._local_models for name in (model, bare))

    def _warn_unknown(self, model: str) -> None:
        with self._warned_lock:
            if model in self._warned:
                return
            self._warned.add(model)
        logger.warning(
            "No price is known for model %r: its cost shows as 0 (priced=False). Pass "
            "CostEstimator(overrides={%r: ModelPrice(...)}), or list it in local_models if it runs locally.",
            model,
            model,
        )


def _split_model(model: str) -> tuple[str | None, str]:
    """Split ``"provider:name"`` into its provider and bare name.

    Only a prefix made of letters and dashes counts as a provider, so most Ollama tags
    (``"llama3.2:3b"``) stay whole names; an ambiguous one (``"mistral:7b"``) is split, and the
    family check in `CostEstimator.estimate_breakdown` still sees the whole string. A pydantic-ai
    gateway prefix (``"gateway/openai:..."``) is dropped.
    """
    name = model.removeprefix("gateway/")
    prefix, sep, rest = name.partition(":")
    if not sep or not rest or not _looks_like_provider(prefix):
        return None, name
    return prefix, rest


def _looks_like_provider(prefix: str) -> bool:
    # Provider ids are lowercase words with dashes ("openai", "google-gla", "lm-studio"); a model
    # family with a version ("llama3.2", "qwen2.5") has digits or dots.
    return bool(prefix) and all(c.isalpha() or c in "-_" for c in prefix)


def _per_request(tokens: int, requests: int) -> int | float:
    return tokens if requests == 1 else tokens / requests


def _genai_price(usage: Usage, *, model: str, provider: str | None, bare: str) -> tuple[Decimal, Decimal] | None:
    """Prompt and completion price of ``usage`` from genai-prices, or ``None`` if it has none."""
    attempts: list[tuple[str, str | None]] = []
    if provider is not None:
        attempts.append((bare, _PROVIDER_ALIASES.get(provider.lower(), provider)))
    attempts.append((bare, None))
    if bare != model:
        attempts.append((model, None))
    for model_ref, provider_id in attempts:
        try:
            price = calc_price(usage, model_ref, provider_id=provider_id)
        except LookupError:  # genai-prices' way of saying "no such provider or model"
            continue
        return price.input_price, price.output_price
    return None
