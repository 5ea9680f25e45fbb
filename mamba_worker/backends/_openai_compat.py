"""`OpenAICompatibleBackend`: a model served by an OpenAI-compatible Chat Completions API.

A backend holds configuration and builds one pydantic-ai model from it, once: the model's
provider owns one HTTP client, which pydantic-ai replaces by itself when the backend is used
from a new event loop (``run_sync``, one Celery task after another), so a backend can live as
long as the process does.
"""

from __future__ import annotations

import threading
from typing import Final, Self
from urllib.parse import urlsplit

from openai import AsyncOpenAI
from pydantic import SecretStr
from pydantic_ai.models import Model
from pydantic_ai.profiles import ModelProfile, merge_profile
from pydantic_ai.providers import Provider
from pydantic_ai.providers.ollama import OllamaProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.providers.vllm import VLLMProvider
from pydantic_ai.settings import ModelSettings

from mamba_worker.backends._chat_model import CompatChatModel
from mamba_worker.backends._compat import SERVER_COMPAT, ServerCompat, ServerKind
from mamba_worker.backends._profiles import ModelProfileInfo, get_profile
from mamba_worker.errors import ConfigurationError

DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 3


class OpenAICompatibleBackend:
    """A model on any server that speaks OpenAI's Chat Completions API.

    Example:
        >>> backend = OpenAICompatibleBackend(
        ...     model="my-model",
        ...     base_url="http://localhost:8000/v1",
        ...     api_key="optional-key",
        ... )
        >>> "optional-key" in repr(backend)  # the key never shows
        False
        >>> from pydantic_ai import Agent
        >>> agent = Agent(backend.get_model())

    Args:
        model: The model name the server knows (``"llama3.2"``, ``"meta-llama/Llama-3.2-3B-Instruct"``).
        base_url: The server's API root, usually ending in ``/v1``.
        api_key: The key, when the server wants one; kept as a `SecretStr`. Servers that need no
            key get a placeholder, because the OpenAI client insists on one.
        profile: What the model can do; defaults to `get_profile(model)`.
        timeout: Seconds to wait for one response attempt.
        max_retries: Retries of a failed request (429, 5xx, connection errors) inside the client.
        server: Which server this is; picks the `ServerCompat` preset and the pydantic-ai provider.
        compat: Overrides the preset for ``server``.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | SecretStr | None = None,
        *,
        profile: ModelProfileInfo | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        server: ServerKind = "openai-compatible",
        compat: ServerCompat | None = None,
    ) -> None:
        if not model or not model.strip():
            raise ConfigurationError("The model name is empty; set MAMBA_MODEL_BACKEND__MODEL (model_backend.model).")
        _check_base_url(base_url)
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout!r} (MAMBA_MODEL_BACKEND__TIMEOUT).")
        if max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be 0 or more, got {max_retries!r} (MAMBA_MODEL_BACKEND__MAX_RETRIES)."
            )
        self._model = model.strip()
        self._base_url = base_url.rstrip("/")
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._explicit_profile = profile is not None
        self._profile = profile if profile is not None else get_profile(self._model)
        self._timeout = timeout
        self._max_retries = max_retries
        self._server: ServerKind = server
        self._compat = compat if compat is not None else SERVER_COMPAT[server]
        self._built: CompatChatModel | None = None
        # Building the model twice would open two HTTP clients; agents may share a backend across threads.
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The model name sent to the server."""
        return self._model

    @property
    def base_url(self) -> str:
        """The server's API root."""
        return self._base_url

    @property
    def api_key(self) -> SecretStr | None:
        """The key, as a `SecretStr`; call ``get_secret_value()`` only to hand it to a client."""
        return self._api_key

    @property
    def profile(self) -> ModelProfileInfo:
        """What the model can do (context window, tools, ...)."""
        return self._profile

    @property
    def server(self) -> ServerKind:
        """Which server this backend talks to."""
        return self._server

    @property
    def compat(self) -> ServerCompat:
        """How the server's API differs from OpenAI's."""
        return self._compat

    @property
    def timeout(self) -> float:
        """Seconds to wait for one response attempt."""
        return self._timeout

    @property
    def max_retries(self) -> int:
        """Retries of a failed request inside the client."""
        return self._max_retries

    def get_model(self) -> Model:
        """Return the pydantic-ai model for this backend (built on first call, then reused)."""
        with self._lock:
            if self._built is None:
                self._built = CompatChatModel(
                    self._model,
                    provider=self._provider(),
                    profile=self._pydantic_profile(),
                    settings=ModelSettings(timeout=self._timeout, max_retries=self._max_retries),
                    tool_call_content=self._compat.tool_call_content,
                )
            return self._built

    async def aclose(self) -> None:
        """Close the HTTP client, if a model was built; the backend builds a new one when used again."""
        with self._lock:
            built, self._built = self._built, None
        if built is not None and built.provider is not None:
            # Entering and leaving the provider closes the client it created.
            provider = built.provider
            async with provider:
                pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _provider(self) -> Provider[AsyncOpenAI]:
        key = self._api_key.get_secret_value() if self._api_key is not None else None
        match self._server:
            case "ollama":
                return OllamaProvider(base_url=self._base_url, api_key=key)
            case "vllm":
                return VLLMProvider(base_url=self._base_url, api_key=key)
            case "lmstudio" | "openai-compatible":
                return OpenAICompatibleProvider(self._server, base_url=self._base_url, api_key=key)

    def _pydantic_profile(self) -> ModelProfile:
        profile: ModelProfile = self._compat.model_profile()
        if self._server == "ollama" and _is_ollama_cloud(self._base_url, self._model):
            # Ollama Cloud accepts json_schema but does not enforce it (pydantic-ai's OllamaModel does the same).
            profile = merge_profile(profile, ModelProfile(supports_json_schema_output=False))
        info = self._profile
        if not (info.known or self._explicit_profile):
            # The default profile is a guess; pydantic-ai's own defaults for the name are better ones.
            return profile
        facts = ModelProfile(context_window=info.context_window)
        # Only narrow: a True in our table must not switch on what the server's profile switched off.
        if not info.supports_tools:
            facts["supports_tools"] = False
        if not info.supports_tool_choice and self._explicit_profile:
            facts["supports_forced_tool_choice"] = False
        if not info.supports_vision:
            facts["supports_image_input"] = False
        return merge_profile(profile, facts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self._model!r}, base_url={self._base_url!r}, "
            f"server={self._server!r}, api_key={self._api_key!r})"
        )


def _check_base_url(base_url: str) -> None:
    parts = urlsplit(base_url.strip()) if base_url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"The model server URL {redact_url(base_url)!r} is not an http(s) URL; set "
            "MAMBA_MODEL_BACKEND__BASE_URL (model_backend.base_url) to the server's API root, "
            "for example http://localhost:11434/v1."
        )


def redact_url(url: str | None) -> str:
    """Return ``url`` without any user name or password in it (``http://***@host/v1``)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _is_ollama_cloud(base_url: str, model: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "ollama.com" or host.endswith(".ollama.com") or model.endswith("-cloud")
