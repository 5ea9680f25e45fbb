from __future__ import annotations

import pytest
import tiktoken


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the tokenizer encodes during the test, in order (a spy on tiktoken itself)."""
    calls: list[str] = []
    original = tiktoken.Encoding.encode_ordinary

    def spy(self: tiktoken.Encoding, text: str) -> list[int]:
        calls.append(text)
        return original(self, text)

    monkeypatch.setattr(tiktoken.Encoding, "encode_ordinary", spy)
    return calls
