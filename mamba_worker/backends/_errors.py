"""`translate_model_error`: pydantic-ai and HTTP client failures as Mamba errors.

pydantic-ai already sorts provider failures into categories (``ModelRateLimitError``,
``ModelAuthenticationError``, ``ModelConnectionError``, ...). This module turns each into the
`mamba_worker.errors` class callers catch, with a message that says what to change and which
setting holds it. Messages quote the server's own explanation, cut short and with anything that
looks like a credential masked, because a server may echo what it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import httpx
import httpx2
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelTimeoutError,
)

from mamba_worker.backends._openai_compat import redact_url
from mamba_worker.errors import AuthenticationError, MambaError, ModelBackendError, RateLimitError

KEY_SETTING: Final = "MAMBA_MODEL_BACKEND__API_KEY"
URL_SETTING: Final = "MAMBA_MODEL_BACKEND__BASE_URL"
MODEL_SETTING: Final = "MAMBA_MODEL_BACKEND__MODEL"
TIMEOUT_SETTING: Final = "MAMBA_MODEL_BACKEND__TIMEOUT"

_MAX_DETAIL: Final = 300
# Bearer tokens and the usual key shapes (sk-..., sk-ant-..., long hex/base64 runs).
_SECRET_PATTERN: Final = re.compile(
    r"(?i)(bearer\s+\S+|\bsk-[A-Za-z0-9_\-]{4,}|\b(?:api[_-]?key|token|password)\s*[=:]\s*\S+|\b[A-Za-z0-9_\-]{32,}\b)"
)


def translate_model_error(
    error: BaseException, *, model: str | None = None, base_url: str | None = None
) -> MambaError | None:
    """Return the Mamba error for a failed model request, or None when ``error`` is not one.

    Args:
        error: What pydantic-ai (or the HTTP client below it) raised.
        model: The model name, for the message; defaults to the one the error carries.
        base_url: The server's URL, for messages about reaching it; found on the failed
            request when not given.

    Returns:
        `RateLimitError` (with ``retry_after`` when the server said), `AuthenticationError`, or
        `ModelBackendError` for everything else that went wrong talking to the model; a
        `MambaError` passed in is returned as it is; None for exceptions that are not about the
        model backend (let those propagate unchanged).
    """
    if isinstance(error, MambaError):
        return error
    if isinstance(error, BaseExceptionGroup):
        # A FallbackModel raises a group; its first backend failure is the representative one.
        for inner in error.exceptions:
            if (translated := translate_model_error(inner, model=model, base_url=base_url)) is not None:
                return translated
        return None
    if isinstance(error, ModelAPIError):
        return _from_model_api_error(error, model=model or error.model_name, base_url=base_url)
    if isinstance(error, httpx.TransportError | httpx2.TransportError):
        return _unreachable(error, model=model, base_url=base_url, timed_out=_is_timeout(error))
    return None


def _from_model_api_error(error: ModelAPIError, *, model: str, base_url: str | None) -> MambaError:
    status = error.status_code if isinstance(error, ModelHTTPError) else None
    detail = _detail(error)
    if isinstance(error, ModelQuotaExceededError):
        return ModelBackendError(
            f"The model server refused {model!r}: the account's quota or credits are used up{detail}. "
            "Top up the account or switch models (MAMBA_MODEL_BACKEND__MODEL); waiting will not help.",
            model=model,
            status_code=status,
        )
    if isinstance(error, ModelRateLimitError) or status == 429:
        wait = f" It asked us to wait {error.retry_after:g}s." if error.retry_after is not None else ""
        return RateLimitError(
            f"The model server is rate limiting requests for {model!r} (HTTP 429){detail}.{wait} "
            "Retry later, lower the request rate, or raise the account's limits.",
            model=model,
            status_code=status if status is not None else 429,
            retry_after=error.retry_after,
        )
    if isinstance(error, ModelAuthenticationError) or status in (401, 403):
        return AuthenticationError(
            f"The model server refused the API key for {model!r} (HTTP {status or 401}){detail}. "
            f"Set {KEY_SETTING} (model_backend.api_key) to a valid key"
            + (" or OPENAI_API_KEY for OpenAI" if _looks_openai(model) else "")
            + ", and check that it may use this model.",
            model=model,
            status_code=status,
        )
    if isinstance(error, ModelContextWindowExceededError):
        return ModelBackendError(
            f"The conversation is longer than {model!r}'s context window{detail}. Enable or tighten "
            "context compaction (MAMBA_CONTEXT__TRIGGER_THRESHOLD_TOKENS) or use a model with a larger window.",
            model=model,
            status_code=status,
        )
    if isinstance(error, ModelNotFoundError) or status == 404:
        return ModelBackendError(
            f"The model server at {_where(error, base_url)} does not know the model {model!r} (HTTP 404){detail}. "
            f"Check {MODEL_SETTING} (for Ollama, `ollama pull` it first) and {URL_SETTING}.",
            model=model,
            status_code=status,
        )
    if isinstance(error, ModelRequestTimeout | ModelTimeoutError):
        return ModelBackendError(
            f"The model server at {_where(error, base_url)} did not answer for {model!r} in time. "
            f"Raise {TIMEOUT_SETTING} (seconds) or check that the server is not overloaded.",
            model=model,
        )
    if isinstance(error, ModelConnectionError):
        return _unreachable(error, model=model, base_url=base_url, timed_out=False)
    if status is not None and status >= 500:
        return ModelBackendError(
            f"The model server failed while answering for {model!r} (HTTP {status}){detail}. "
            "This is on the server's side; it is retried, and if it persists check the server's logs.",
            model=model,
            status_code=status,
        )
    if status is not None:
        return ModelBackendError(
            f"The model server rejected the request for {model!r} (HTTP {status}){detail}.",
            model=model,
            status_code=status,
        )
    return ModelBackendError(f"The model request for {model!r} failed{detail}.", model=model)


def _unreachable(
    error: BaseException, *, model: str | None, base_url: str | None, timed_out: bool
) -> ModelBackendError:
    where = _where(error, base_url)
    if timed_out:
        return ModelBackendError(
            f"The model server at {where} did not answer in time. Raise {TIMEOUT_SETTING} (seconds) "
            "or check that the server is not overloaded.",
            model=model,
        )
    return ModelBackendError(
        f"Could not reach the model server at {where}. Start the server (for example `ollama serve`), "
        f"or set {URL_SETTING} (model_backend.base_url) to where it listens.",
        model=model,
    )


def _where(error: BaseException, base_url: str | None) -> str:
    if base_url:
        return redact_url(base_url)
    for link in _chain(error):
        request = getattr(link, "request", None)
        url = getattr(request, "url", None) if request is not None else None
        if url is not None:
            return redact_url(str(url))
    return "the configured base URL"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, httpx.TimeoutException | httpx2.TimeoutException)


def _detail(error: ModelAPIError) -> str:
    """The server's own explanation, short and with credentials masked, as ``": ..."``; or ``""``."""
    text = _body_message(error.body)
    if not text:
        return ""
    text = " ".join(_SECRET_PATTERN.sub("***", text).split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return f": {text}"


def _body_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            return _body_message(inner)
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return None
    if isinstance(body, str) and body:
        return body
    return None


def _looks_openai(model: str) -> bool:
    name = model.removeprefix("openai:")
    return model.startswith("openai:") or name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-"))
