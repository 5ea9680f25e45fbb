"""`ServerCompat`: how an OpenAI-compatible server departs from OpenAI's own API.

Local servers speak "OpenAI" with accents. What we know, and what each preset encodes:

- Token limit. OpenAI wants ``max_completion_tokens``; Ollama and LM Studio document only
  ``max_tokens``; vLLM accepts both. A server that does not know the field it gets either
  rejects the request or silently ignores the limit.
- ``content: null`` on an assistant turn that only calls tools. OpenAI's spec allows it;
  Ollama answers 400 ``invalid message content type: <nil>`` (pydantic-ai issue 5206) and
  LM Studio 400 ``'content' field must be a string`` (lmstudio-bug-tracker 261). They get ``""``.
- Forcing a tool (``tool_choice: "required"`` or a named function). vLLM honours it; Ollama and
  LM Studio ignore it or reject it, so pydantic-ai sends ``auto`` there instead.

Each preset becomes a pydantic-ai ``OpenAIModelProfile`` merged over the provider's own profile
for the model (`ServerCompat.model_profile`), plus the one knob no profile field covers
(``tool_call_content``), which `CompatChatModel` applies while mapping messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic_ai.profiles.openai import OpenAIModelProfile

ServerKind = Literal["openai-compatible", "ollama", "vllm", "lmstudio"]
"""The OpenAI-compatible servers Mamba knows; ``openai-compatible`` is any other one."""


@dataclass(frozen=True, kw_only=True)
class ServerCompat:
    """Where an OpenAI-compatible server's Chat Completions API differs from OpenAI's.

    Example:
        >>> strict = ServerCompat(max_tokens_field="max_tokens", tool_call_content="empty_string")
        >>> strict.model_profile()["openai_chat_supports_max_completion_tokens"]
        False
    """

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """The request field that carries the ``max_tokens`` model setting."""
    tool_call_content: Literal["null", "empty_string"] = "null"
    """How an assistant turn with tool calls and no text sends its ``content``."""
    supports_tool_choice: bool = True
    """Whether the server honours a forced ``tool_choice``; when False, ``auto`` is sent instead."""
    supports_strict_tools: bool | None = None
    """Whether tool definitions may carry ``strict: true``; None leaves pydantic-ai's choice for the model."""

    def model_profile(self) -> OpenAIModelProfile:
        """The pydantic-ai profile fields this server needs, to merge over the model's own profile."""
        profile = OpenAIModelProfile(
            openai_chat_supports_max_completion_tokens=self.max_tokens_field == "max_completion_tokens",
        )
        if not self.supports_tool_choice:
            # Only ever narrows: a model whose own profile says it cannot force a tool keeps that.
            profile["supports_forced_tool_choice"] = False
        if self.supports_strict_tools is not None:
            profile["openai_supports_strict_tool_definition"] = self.supports_strict_tools
        return profile


SERVER_COMPAT: Final[dict[ServerKind, ServerCompat]] = {
    # Unknown servers: `max_tokens` is the one limit field every OpenAI-compatible server
    # accepts (llama.cpp, TGI, LiteLLM, OpenRouter); null content is what the spec says.
    "openai-compatible": ServerCompat(),
    "ollama": ServerCompat(
        max_tokens_field="max_tokens",
        tool_call_content="empty_string",
        supports_tool_choice=False,
        supports_strict_tools=False,
    ),
    "vllm": ServerCompat(
        max_tokens_field="max_completion_tokens",
        tool_call_content="null",
        supports_tool_choice=True,
    ),
    "lmstudio": ServerCompat(
        max_tokens_field="max_tokens",
        tool_call_content="empty_string",
        supports_tool_choice=False,
        supports_strict_tools=False,
    ),
}
"""The preset for each known server; `OpenAICompatibleBackend` uses it unless given its own."""
