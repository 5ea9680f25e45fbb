"""`CompatChatModel`: pydantic-ai's Chat Completions model, with one local-server fix.

Everything a profile field can express is set through the profile (see `ServerCompat`). The one
difference no profile field covers is how a tool-calling assistant turn without text sends its
``content``: pydantic-ai sends ``null`` (as OpenAI's spec says), which Ollama and LM Studio
reject. `OpenAIChatModel` documents `_map_model_response` as the hook for exactly this kind of
per-server mapping, so the fix overrides it rather than patching the request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from openai import AsyncOpenAI
from openai.types import chat
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfileSpec
from pydantic_ai.providers import Provider
from pydantic_ai.settings import ModelSettings


@dataclass(init=False)
class CompatChatModel(OpenAIChatModel):
    """An `OpenAIChatModel` that can send ``""`` instead of ``null`` for tool-call-only turns."""

    tool_call_content: Literal["null", "empty_string"]

    def __init__(
        self,
        model_name: str,
        *,
        provider: Provider[AsyncOpenAI],
        profile: ModelProfileSpec | None = None,
        settings: ModelSettings | None = None,
        tool_call_content: Literal["null", "empty_string"] = "null",
    ) -> None:
        self.tool_call_content = tool_call_content
        super().__init__(model_name, provider=provider, profile=profile, settings=settings)

    def _map_model_response(self, message: ModelResponse) -> chat.ChatCompletionMessageParam | None:
        mapped = super()._map_model_response(message)
        if (
            self.tool_call_content == "empty_string"
            and mapped is not None
            and mapped["role"] == "assistant"
            and mapped.get("content", None) is None
        ):
            mapped["content"] = ""
        return mapped
