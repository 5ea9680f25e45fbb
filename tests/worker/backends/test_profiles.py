from __future__ import annotations

import pytest

from mamba_worker.backends import DEFAULT_PROFILE, ModelProfileInfo, get_profile


def test_known_openai_model_has_its_published_figures() -> None:
    profile = get_profile("gpt-4o")

    assert (profile.context_window, profile.max_output_tokens) == (128_000, 16_384)
    assert profile.supports_tools and profile.supports_vision and profile.supports_tool_choice
    assert profile.known


@pytest.mark.parametrize("prefixed", ["openai:gpt-4o", "OPENAI:gpt-4o", "  gpt-4o  "])
def test_provider_prefix_and_spacing_do_not_change_the_profile(prefixed: str) -> None:
    assert get_profile(prefixed) == get_profile("gpt-4o")


def test_dated_snapshot_finds_its_family() -> None:
    assert get_profile("gpt-4o-mini-2024-07-18").context_window == get_profile("gpt-4o-mini").context_window


def test_longest_prefix_wins() -> None:
    assert get_profile("gpt-4.1").context_window == 1_047_576
    assert get_profile("gpt-4").context_window == 8_192


def test_a_digit_after_a_key_is_a_different_model() -> None:
    assert not get_profile("o10").known


def test_anthropic_model() -> None:
    profile = get_profile("anthropic:claude-3-5-sonnet-20241022")

    assert profile.context_window == 200_000
    assert profile.supports_tools and profile.supports_vision


def test_reasoning_model_without_tools() -> None:
    assert not get_profile("o1-mini").supports_tools


@pytest.mark.parametrize(
    "name", ["llama3.2", "ollama:llama3.2:3b", "meta-llama/Llama-3.2-3B-Instruct", "vllm:meta-llama/Llama-3.2-1B"]
)
def test_local_names_in_ollama_and_hugging_face_spellings_find_the_same_family(name: str) -> None:
    profile = get_profile(name)

    assert profile.known
    assert profile.context_window == 131_072
    assert profile.supports_tools


def test_local_model_without_tool_support() -> None:
    assert not get_profile("gemma2:9b").supports_tools


def test_unknown_model_gets_the_default_profile_under_its_own_name() -> None:
    profile = get_profile("lmstudio:my-finetune")

    assert not profile.known
    assert profile.name == "my-finetune"
    assert profile.context_window == DEFAULT_PROFILE.context_window
    assert profile.supports_tools and not profile.supports_tool_choice


def test_name_is_the_given_name_without_prefix() -> None:
    assert get_profile("openai:gpt-4o-2024-08-06").name == "gpt-4o-2024-08-06"


def test_profile_is_immutable_and_keyword_only() -> None:
    profile = get_profile("gpt-4o")

    with pytest.raises(AttributeError):
        profile.context_window = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ModelProfileInfo("x", 1, 1)  # type: ignore[call-arg]
