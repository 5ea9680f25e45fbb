"""`ModelProfileInfo` and `get_profile`: what a model can do, by name.

The table below holds published figures (context window, output limit, capabilities) for the
OpenAI, Anthropic and common local model families. A name is matched on its longest known
prefix after normalising it (provider prefix, Hugging Face organisation, Ollama tag and case
removed), so dated snapshots (``gpt-4o-2024-08-06``) and sizes (``llama3.2:3b``,
``meta-llama/Llama-3.2-3B-Instruct``) find their family. Names nothing matches get
`DEFAULT_PROFILE`, a deliberately modest profile, marked ``known=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

# Prefixes Mamba accepts in front of a model name (`create_model` routes on them); they say
# where the model runs, not what it is, so profiles ignore them.
PROVIDER_PREFIXES: Final = ("openai", "anthropic", "ollama", "vllm", "lmstudio", "openai-compatible")


@dataclass(frozen=True, kw_only=True)
class ModelProfileInfo:
    """What a model can do: context window, output limit and capabilities.

    Example:
        >>> profile = get_profile("openai:gpt-4o")
        >>> profile.context_window, profile.supports_tools
        (128000, True)
    """

    name: str
    """The model name the profile was looked up for (as given, prefix removed)."""
    context_window: int
    """Tokens the model accepts in one request, input and output together."""
    max_output_tokens: int
    """Most tokens the model writes in one response."""
    supports_tools: bool = True
    """Whether the model can call function tools."""
    supports_streaming: bool = True
    """Whether responses can be streamed."""
    supports_vision: bool = False
    """Whether the model accepts images."""
    supports_json_mode: bool = False
    """Whether the model can be forced to answer JSON (``response_format``, structured output)."""
    supports_tool_choice: bool = False
    """Whether the model honours ``tool_choice`` that forces a tool call (``required`` or a named tool)."""
    known: bool = True
    """False when nothing in the table matched and the figures are `DEFAULT_PROFILE`'s guesses."""


DEFAULT_PROFILE: Final = ModelProfileInfo(
    name="unknown",
    context_window=8_192,
    max_output_tokens=4_096,
    supports_tools=True,
    supports_streaming=True,
    supports_vision=False,
    supports_json_mode=False,
    supports_tool_choice=False,
    known=False,
)
"""The profile of a model nothing in the table matches: a small window, tools assumed, nothing forced."""


def _openai(context: int, output: int, *, vision: bool = True, tools: bool = True) -> ModelProfileInfo:
    return ModelProfileInfo(
        name="",
        context_window=context,
        max_output_tokens=output,
        supports_tools=tools,
        supports_vision=vision,
        supports_json_mode=tools,
        supports_tool_choice=tools,
    )


def _anthropic(context: int, output: int) -> ModelProfileInfo:
    # Anthropic's API has tool_choice (any/tool) and no JSON mode of its own; pydantic-ai gets
    # structured output through a tool, which is why json_mode stays False.
    return ModelProfileInfo(
        name="",
        context_window=context,
        max_output_tokens=output,
        supports_vision=True,
        supports_tool_choice=True,
    )


def _local(
    context: int, output: int = 4_096, *, tools: bool = True, vision: bool = False, json_mode: bool = True
) -> ModelProfileInfo:
    # Local servers (Ollama, vLLM, LM Studio) constrain JSON with grammars, so JSON mode works
    # for any model; forcing a tool depends on the server, which the backend decides, not the model.
    return ModelProfileInfo(
        name="",
        context_window=context,
        max_output_tokens=output,
        supports_tools=tools,
        supports_vision=vision,
        supports_json_mode=json_mode,
        supports_tool_choice=False,
    )


# Keys are normalised (see `_normalise`). Longest prefix wins, so a family entry ("gpt-", "claude-")
# only answers for names no specific entry covers.
_TABLE: Final[dict[str, ModelProfileInfo]] = {
    # OpenAI
    "gpt-": _openai(128_000, 16_384),
    "gpt-3.5-turbo": _openai(16_385, 4_096, vision=False),
    "gpt-4": _openai(8_192, 8_192, vision=False),
    "gpt-4-turbo": _openai(128_000, 4_096),
    "gpt-4o": _openai(128_000, 16_384),
    "gpt-4o-mini": _openai(128_000, 16_384),
    "gpt-4.1": _openai(1_047_576, 32_768),
    "gpt-4.5": _openai(128_000, 16_384),
    "gpt-5": _openai(400_000, 128_000),
    "chatgpt-4o": _openai(128_000, 16_384, tools=False),
    "o1": _openai(200_000, 100_000),
    "o1-mini": _openai(128_000, 65_536, vision=False, tools=False),
    "o1-preview": _openai(128_000, 32_768, vision=False, tools=False),
    "o3": _openai(200_000, 100_000),
    "o3-mini": _openai(200_000, 100_000, vision=False),
    "o4-mini": _openai(200_000, 100_000),
    # Anthropic
    "claude-": _anthropic(200_000, 8_192),
    "claude-3-haiku": _anthropic(200_000, 4_096),
    "claude-3-opus": _anthropic(200_000, 4_096),
    "claude-3-sonnet": _anthropic(200_000, 4_096),
    "claude-3-5-haiku": _anthropic(200_000, 8_192),
    "claude-3-5-sonnet": _anthropic(200_000, 8_192),
    "claude-3-7-sonnet": _anthropic(200_000, 64_000),
    "claude-sonnet-4": _anthropic(200_000, 64_000),
    "claude-opus-4": _anthropic(200_000, 32_000),
    "claude-haiku-4": _anthropic(200_000, 64_000),
    # Local families (Ollama names; Hugging Face ids normalise onto them)
    "llama3": _local(8_192, tools=False),
    "llama3.1": _local(131_072),
    "llama3.2": _local(131_072),
    "llama3.2-vision": _local(131_072, tools=False, vision=True),
    "llama3.3": _local(131_072),
    "llama4": _local(1_048_576, vision=True),
    "llama2": _local(4_096, tools=False),
    "codellama": _local(16_384, tools=False),
    "mistral": _local(32_768),
    "mistral-nemo": _local(131_072),
    "mistral-small": _local(32_768),
    "mistral-large": _local(131_072),
    "mixtral": _local(32_768),
    "qwen2": _local(32_768),
    "qwen2.5": _local(32_768),
    "qwen2.5-coder": _local(32_768),
    "qwen3": _local(40_960),
    "qwq": _local(131_072),
    "gemma": _local(8_192, tools=False),
    "gemma2": _local(8_192, tools=False),
    "gemma3": _local(131_072, tools=False, vision=True),
    "phi3": _local(4_096, tools=False),
    "phi4": _local(16_384, tools=False),
    "phi4-mini": _local(131_072),
    "deepseek-r1": _local(131_072, tools=False),
    "deepseek-v3": _local(131_072),
    "deepseek-coder": _local(16_384, tools=False),
    "command-r": _local(131_072),
    "gpt-oss": _local(131_072),
    "llava": _local(4_096, tools=False, vision=True),
    "granite3": _local(131_072),
    "smollm2": _local(8_192, tools=False),
}


def _strip_provider_prefix(model: str) -> str:
    prefix, sep, rest = model.partition(":")
    if sep and prefix.lower() in PROVIDER_PREFIXES:
        return rest
    return model


def _normalise(model: str) -> str:
    """Reduce a model name to the form the table is keyed on.

    ``openai:GPT-4o`` -> ``gpt-4o``; ``llama3.2:3b`` -> ``llama3.2``;
    ``meta-llama/Llama-3.2-3B-Instruct`` -> ``llama3.2-3b-instruct``.
    """
    name = _strip_provider_prefix(model.strip()).lower()
    name = name.rpartition("/")[2]  # Hugging Face organisation ("meta-llama/...")
    name = name.partition(":")[0]  # Ollama tag ("llama3.2:3b")
    name = name.removeprefix("meta-")  # "Meta-Llama-3.1-8B-Instruct"
    # Hugging Face spells families with a dash before the version ("llama-3.2", "qwen-2.5");
    # Ollama does not. Join them so both find the same entry.
    for family in ("llama", "qwen", "gemma", "phi", "granite"):
        if name.startswith(family + "-") and name[len(family) + 1 : len(family) + 2].isdigit():
            name = family + name[len(family) + 1 :]
    return name


def _lookup(name: str) -> ModelProfileInfo | None:
    best: str | None = None
    for key in _TABLE:
        if name.startswith(key) and _boundary_ok(name, key) and (best is None or len(key) > len(best)):
            best = key
    return _TABLE[best] if best is not None else None


def _boundary_ok(name: str, key: str) -> bool:
    # "o1" must match "o1-mini" and "o1-2024-12-17" but not "o10x"; "gpt-4" must not match
    # "gpt-40"; a key ending in "-" is a family and matches anything after it.
    if key.endswith("-") or len(name) == len(key):
        return True
    following = name[len(key)]
    return not following.isalnum() or (key[-1].isdigit() != following.isdigit())


def get_profile(model: str) -> ModelProfileInfo:
    """Return what the named model can do.

    Args:
        model: A model name, with or without a provider prefix (``"openai:gpt-4o"`` and
            ``"gpt-4o"`` give the same profile), an Ollama tag or a Hugging Face organisation.

    Returns:
        The matching profile with ``name`` set to the name given (prefix removed), or
        `DEFAULT_PROFILE` (``known=False``) when nothing matches.
    """
    name = _strip_provider_prefix(model.strip())
    found = _lookup(_normalise(model))
    return replace(found if found is not None else DEFAULT_PROFILE, name=name)
