"""`ModelBackendSettings`: which model to talk to and how."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ModelBackendSettings(BaseModel):
    """Model backend settings (the ``model_backend`` section, ``MAMBA_MODEL_BACKEND__*``).

    ``model`` takes pydantic-ai model strings (``openai:gpt-4o``, ``anthropic:claude-sonnet-4-5``,
    or a bare OpenAI-compatible name such as ``gpt-4o`` or ``llama3.2`` together with
    ``base_url``). ``offline`` selects Mamba's built-in offline model, which needs no key and no
    server; when ``model`` is unset, the ``mamba`` CLI uses it and says so.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Model name; unset means no model is configured."""
    base_url: str | None = None
    """Base URL of an OpenAI-compatible server (Ollama, vLLM, LM Studio, a proxy)."""
    api_key: SecretStr | None = None
    """API key; stored as `SecretStr` and never logged."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for one model response."""
    max_retries: int = Field(default=3, ge=0)
    """Retries of a failed model request inside the HTTP client."""
