"""`create_model`: the one place a model string becomes a pydantic-ai model.

Both `mamba_worker.agent.Agent` and the durable worker call it, so a model string means the same
thing everywhere. The accepted forms, checked in this order:

==============================  ===============================================================
``offline``                      `OfflineModel`: no key, no server.
``ollama:``/``vllm:``/``lmstudio:<name>``  that local server, at ``base_url`` or its usual address.
``openai-compatible:<name>``     any OpenAI-compatible server at ``base_url`` (required).
``openai:<name>``                OpenAI (``base_url`` for a proxy); needs a key.
``anthropic:<name>``             Anthropic; needs the ``anthropic`` extra and a key.
``<name>`` with ``base_url``     the OpenAI-compatible server there (OpenAI itself for api.openai.com).
bare ``gpt-4o``, ``o3``, ...     OpenAI; bare ``claude-...``: Anthropic.
==============================  ===============================================================

Keys come from ``model_backend.api_key`` (``MAMBA_MODEL_BACKEND__API_KEY``), then the provider's
own variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``). Every mistake is a `ConfigurationError`
naming the setting to change; none of them contains a key.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from mamba_worker.backends._compat import ServerKind
from mamba_worker.backends._local import LMSTUDIO_BASE_URL, OLLAMA_BASE_URL, VLLM_BASE_URL
from mamba_worker.backends._offline import OFFLINE_MODEL_NAME, OfflineModel
from mamba_worker.backends._openai_compat import OpenAICompatibleBackend, redact_url
from mamba_worker.config import AgentSettings, ModelBackendSettings
from mamba_worker.errors import ConfigurationError

logger = logging.getLogger(__name__)

MODEL_SETTING: Final = "MAMBA_MODEL_BACKEND__MODEL"
KEY_SETTING: Final = "MAMBA_MODEL_BACKEND__API_KEY"
URL_SETTING: Final = "MAMBA_MODEL_BACKEND__BASE_URL"

_LOCAL_SERVERS: Final[dict[str, tuple[ServerKind, str]]] = {
    "ollama": ("ollama", OLLAMA_BASE_URL),
    "vllm": ("vllm", VLLM_BASE_URL),
    "lmstudio": ("lmstudio", LMSTUDIO_BASE_URL),
}
# A bare name with a base_url on one of these default ports gets that server's quirks; the ports
# are the servers' documented defaults and the quirks are harmless for any other server.
_SERVER_BY_PORT: Final[dict[int, ServerKind]] = {11434: "ollama", 1234: "lmstudio"}
_OPENAI_NAME: Final = re.compile(r"^(gpt-|chatgpt-|o\d(-|$)|ft:gpt-|codex-)")
_ANTHROPIC_NAME: Final = re.compile(r"^claude-")
_OPENAI_HOST: Final = "api.openai.com"

ACCEPTED_FORMS: Final = (
    "'offline' (built in, needs nothing); "
    "'openai:<model>' or a bare OpenAI name such as 'gpt-4o' (needs OPENAI_API_KEY or "
    f"{KEY_SETTING}); "
    "'anthropic:<model>' (needs pydantic-ai-slim[anthropic] and ANTHROPIC_API_KEY or "
    f"{KEY_SETTING}); "
    "'ollama:<model>', 'vllm:<model>' or 'lmstudio:<model>' for a local server; "
    f"or the name the server knows together with {URL_SETTING} for any other OpenAI-compatible server"
)
"""The forms `create_model` accepts, as error messages list them."""


def create_model(model: str | None, *, settings: ModelBackendSettings | AgentSettings | None = None) -> Model:
    """Turn a model string into a pydantic-ai model, with keys, URL, timeout and retries from settings.

    Example:
        >>> create_model("offline", settings=ModelBackendSettings()).model_name
        'offline'

    Args:
        model: The model string (see the module docstring for the forms); None uses
            ``settings.model``.
        settings: The ``model_backend`` section (or the whole `AgentSettings`); its ``base_url``,
            ``api_key``, ``timeout`` and ``max_retries`` apply. Defaults to empty settings.

    Raises:
        ConfigurationError: No model is configured, the string is not one of the accepted forms,
            a needed key is missing, or a needed extra is not installed. The message names the
            setting to change and never contains a key.
    """
    backend = _section(settings)
    name = (model if model is not None else backend.model or "").strip()
    if not name:
        raise ConfigurationError(
            f"No model is configured. Set {MODEL_SETTING} (model_backend.model in config.toml), "
            f"for example {MODEL_SETTING}=openai:gpt-4o, or {MODEL_SETTING}=offline to try Mamba without one. "
            f"Accepted forms: {ACCEPTED_FORMS}."
        )
    if name == OFFLINE_MODEL_NAME:
        return OfflineModel()

    prefix, sep, rest = name.partition(":")
    prefix = prefix.lower() if sep else ""
    if prefix in _LOCAL_SERVERS:
        server, default_url = _LOCAL_SERVERS[prefix]
        return _compatible(_named(rest, name), backend.base_url or default_url, backend, server=server)
    if prefix == "openai-compatible":
        if not backend.base_url:
            raise ConfigurationError(
                f"The model {name!r} needs the server's address: set {URL_SETTING} (model_backend.base_url)."
            )
        return _compatible(_named(rest, name), backend.base_url, backend, server="openai-compatible")
    if prefix == "openai":
        return _openai(_named(rest, name), backend)
    if prefix == "anthropic":
        return _anthropic(_named(rest, name), backend)
    if backend.base_url:
        # Whatever the name looks like ("llama3.2:3b" is an Ollama tag, not a prefix), the server decides.
        if urlsplit(backend.base_url).hostname == _OPENAI_HOST:
            return _openai(name, backend)
        return _compatible(name, backend.base_url, backend, server=_server_for(backend.base_url))
    if _OPENAI_NAME.match(name):
        return _openai(name, backend)
    if _ANTHROPIC_NAME.match(name):
        return _anthropic(name, backend)
    hint = f" The prefix {prefix!r} is not one Mamba supports." if prefix else ""
    raise ConfigurationError(
        f"Unknown model {name!r}.{hint} Set {MODEL_SETTING} to one of the accepted forms: {ACCEPTED_FORMS}."
    )


def _section(settings: ModelBackendSettings | AgentSettings | None) -> ModelBackendSettings:
    if settings is None:
        return ModelBackendSettings()
    if isinstance(settings, AgentSettings):
        return settings.model_backend
    return settings


def _named(rest: str, full: str) -> str:
    name = rest.strip()
    if not name:
        raise ConfigurationError(f"The model string {full!r} has no model name after the prefix; set {MODEL_SETTING}.")
    return name


def _server_for(base_url: str) -> ServerKind:
    parts = urlsplit(base_url)
    server = _SERVER_BY_PORT.get(parts.port or 0, "openai-compatible")
    if server != "openai-compatible":
        logger.debug("Treating %s as %s because of its port", redact_url(base_url), server)
    return server


def _compatible(name: str, base_url: str, backend: ModelBackendSettings, *, server: ServerKind) -> Model:
    return OpenAICompatibleBackend(
        name,
        base_url,
        backend.api_key,
        timeout=backend.timeout,
        max_retries=backend.max_retries,
        server=server,
    ).get_model()


def _key(backend: ModelBackendSettings, env_var: str) -> str | None:
    configured = backend.api_key.get_secret_value() if isinstance(backend.api_key, SecretStr) else None
    return configured or os.environ.get(env_var) or None


def _missing_key(name: str, env_var: str) -> ConfigurationError:
    return ConfigurationError(
        f"The model {name!r} needs an API key: set {KEY_SETTING} (model_backend.api_key, in the environment, "
        f".env or ~/mamba.env) or {env_var}. To try Mamba without a key, set {MODEL_SETTING}=offline."
    )


def _settings(backend: ModelBackendSettings) -> ModelSettings:
    return ModelSettings(timeout=backend.timeout, max_retries=backend.max_retries)


def _openai(name: str, backend: ModelBackendSettings) -> Model:
    key = _key(backend, "OPENAI_API_KEY")
    if key is None:
        raise _missing_key(f"openai:{name}", "OPENAI_API_KEY")
    provider = OpenAIProvider(base_url=backend.base_url, api_key=key)
    # Chat Completions rather than pydantic-ai's default Responses API for `openai:`: each request
    # carries the whole history and no server-side state, which is what a step replayed on
    # another worker needs.
    return OpenAIChatModel(name, provider=provider, settings=_settings(backend))


def _anthropic(name: str, backend: ModelBackendSettings) -> Model:
    if importlib.util.find_spec("anthropic") is None:
        raise ConfigurationError(
            f"The model 'anthropic:{name}' needs the Anthropic client, which is not installed. "
            'Install it with: pip install "pydantic-ai-slim[anthropic]"'
        )
    key = _key(backend, "ANTHROPIC_API_KEY")
    if key is None:
        raise _missing_key(f"anthropic:{name}", "ANTHROPIC_API_KEY")
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    provider = AnthropicProvider(api_key=key, base_url=backend.base_url)
    model: Model = AnthropicModel(name, provider=provider, settings=_settings(backend))
    return model
