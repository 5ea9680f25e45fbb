"""`Usage`: tokens, requests and cost of a model call, a step or a run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field


class Usage(BaseModel):
    """Tokens, requests and estimated cost.

    Immutable; add two with ``+``. ``total_tokens`` is derived (input plus output; cache tokens are
    part of the input count, as the providers report them).

    Example:
        >>> (Usage(input_tokens=10, output_tokens=5) + Usage(input_tokens=1, requests=1)).total_tokens
        16
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(default=0, ge=0)
    """Tokens sent to the model (prompt), including cached ones."""
    output_tokens: int = Field(default=0, ge=0)
    """Tokens the model produced (completion)."""
    cache_read_tokens: int = Field(default=0, ge=0)
    """Input tokens served from the provider's prompt cache."""
    cache_write_tokens: int = Field(default=0, ge=0)
    """Input tokens written to the provider's prompt cache."""
    requests: int = Field(default=0, ge=0)
    """Model requests made."""
    cost_usd: float = Field(default=0.0, ge=0)
    """Estimated cost in US dollars (0 when the model's price is unknown)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            requests=self.requests + other.requests,
            cost_usd=self.cost_usd + other.cost_usd,
        )
