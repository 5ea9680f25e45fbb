"""Factories for the local servers Mamba knows: Ollama, vLLM and LM Studio.

Each returns an `OpenAICompatibleBackend` aimed at the server's usual local address, with the
`ServerCompat` preset that server needs (see `mamba_worker.backends._compat`).
"""

from __future__ import annotations

from typing import Final

from pydantic import SecretStr

from mamba_worker.backends._compat import ServerCompat
from mamba_worker.backends._openai_compat import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, OpenAICompatibleBackend
from mamba_worker.backends._profiles import ModelProfileInfo

OLLAMA_BASE_URL: Final = "http://localhost:11434/v1"
"""Where ``ollama serve`` listens by default."""
VLLM_BASE_URL: Final = "http://localhost:8000/v1"
"""Where ``vllm serve`` listens by default."""
LMSTUDIO_BASE_URL: Final = "http://localhost:1234/v1"
"""Where LM Studio's local server listens by default."""


def create_ollama_backend(
    model: str = "llama3.2",
    *,
    base_url: str = OLLAMA_BASE_URL,
    api_key: str | SecretStr | None = None,
    profile: ModelProfileInfo | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    compat: ServerCompat | None = None,
) -> OpenAICompatibleBackend:
    """Return a backend for a model served by Ollama.

    Ollama gets ``max_tokens``, ``""`` for tool-call-only turns, and never a forced tool choice.

    Example:
        >>> backend = create_ollama_backend("llama3.2")
        >>> backend.base_url
        'http://localhost:11434/v1'

    Args:
        model: The Ollama model name, with or without a tag (``"llama3.2"``, ``"qwen2.5:7b"``).
        base_url: The server's OpenAI-compatible root.
        api_key: Only needed behind an authenticating proxy or for Ollama Cloud.
        profile: What the model can do; defaults to `get_profile(model)`.
        timeout: Seconds to wait for one response attempt.
        max_retries: Retries of a failed request inside the client.
        compat: Overrides the Ollama preset.
    """
    return OpenAICompatibleBackend(
        model,
        base_url,
        api_key,
        profile=profile,
        timeout=timeout,
        max_retries=max_retries,
        server="ollama",
        compat=compat,
    )


def create_vllm_backend(
    model: str,
    *,
    base_url: str = VLLM_BASE_URL,
    api_key: str | SecretStr | None = None,
    profile: ModelProfileInfo | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    compat: ServerCompat | None = None,
) -> OpenAICompatibleBackend:
    """Return a backend for a model served by vLLM.

    vLLM gets ``max_completion_tokens``, ``null`` content as OpenAI sends it, forced tool choice
    where the model family supports it, and one system message (pydantic-ai's vLLM profile).

    Example:
        >>> backend = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct")
        >>> backend.base_url
        'http://localhost:8000/v1'

    Args:
        model: The model id vLLM serves, usually a Hugging Face repository id.
        base_url: The server's OpenAI-compatible root.
        api_key: The value of ``vllm serve --api-key``, if it was started with one.
        profile: What the model can do; defaults to `get_profile(model)`.
        timeout: Seconds to wait for one response attempt.
        max_retries: Retries of a failed request inside the client.
        compat: Overrides the vLLM preset.
    """
    return OpenAICompatibleBackend(
        model,
        base_url,
        api_key,
        profile=profile,
        timeout=timeout,
        max_retries=max_retries,
        server="vllm",
        compat=compat,
    )


def create_lmstudio_backend(
    model: str = "local-model",
    *,
    base_url: str = LMSTUDIO_BASE_URL,
    api_key: str | SecretStr | None = None,
    profile: ModelProfileInfo | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    compat: ServerCompat | None = None,
) -> OpenAICompatibleBackend:
    """Return a backend for the model loaded in LM Studio.

    LM Studio gets ``max_tokens``, ``""`` for tool-call-only turns, and never a forced tool choice.

    Example:
        >>> backend = create_lmstudio_backend()
        >>> backend.base_url
        'http://localhost:1234/v1'

    Args:
        model: The model identifier LM Studio shows; LM Studio answers with the loaded model for
            any name, hence the ``"local-model"`` default.
        base_url: The server's OpenAI-compatible root.
        api_key: Only needed when LM Studio's server requires authentication.
        profile: What the model can do; defaults to `get_profile(model)`.
        timeout: Seconds to wait for one response attempt.
        max_retries: Retries of a failed request inside the client.
        compat: Overrides the LM Studio preset.
    """
    return OpenAICompatibleBackend(
        model,
        base_url,
        api_key,
        profile=profile,
        timeout=timeout,
        max_retries=max_retries,
        server="lmstudio",
        compat=compat,
    )
