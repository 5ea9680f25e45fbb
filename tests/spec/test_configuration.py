"""Spec README, "Configuration": the MAMBA_ variables, .env, ~/mamba.env and config.toml, as written.

The values are the spec's own. Where an agent then runs, the base URL is the fake OpenAI server's
instead of ``https://api.openai.com/v1`` (there is no network here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from mamba_worker import Agent, AgentSettings
from mamba_worker.errors import ConfigurationError
from tests._support.openai_server import OpenAIServer

SPEC_ENV = """\
# Model configuration
MAMBA_MODEL_BACKEND__MODEL=gpt-4o
MAMBA_MODEL_BACKEND__API_KEY=sk-...
MAMBA_MODEL_BACKEND__BASE_URL=https://api.openai.com/v1
# Logging
MAMBA_LOGGING__LEVEL=INFO
MAMBA_LOGGING__FORMAT=json
# Retry behavior
MAMBA_RETRY__MAX_RETRIES=3
MAMBA_RETRY__RETRY_LEVEL=2
"""

SPEC_CONFIG_TOML = """\
[model_backend]
model = "gpt-4o"
base_url = "https://api.openai.com/v1"
[logging]
level = "INFO"
format = "json"
redact_sensitive = true
[retry]
max_retries = 3
retry_level = 2
[context]
strategy = "hybrid"
trigger_threshold_tokens = 100000
target_tokens = 80000
"""


def _assert_spec_env_values(settings: AgentSettings) -> None:
    assert settings.model_backend.model == "gpt-4o"
    assert settings.model_backend.api_key == SecretStr("sk-...")
    assert settings.model_backend.base_url == "https://api.openai.com/v1"
    assert settings.logging.level == "INFO"
    assert settings.logging.format == "json"
    assert settings.retry.max_retries == 3
    assert settings.retry.retry_level == 2


def _set_env_lines(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)


def test_environment_variables(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env_lines(monkeypatch, SPEC_ENV)
    _assert_spec_env_values(AgentSettings())


def test_dotenv_file_in_the_project(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / ".env").write_text(SPEC_ENV)
    _assert_spec_env_values(AgentSettings())


def test_user_wide_mamba_env(in_tmp_cwd: Path) -> None:
    (Path.home() / "mamba.env").write_text(SPEC_ENV)
    _assert_spec_env_values(AgentSettings())


def test_environment_beats_dotenv_beats_user_file(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (Path.home() / "mamba.env").write_text("MAMBA_LOGGING__LEVEL=ERROR\nMAMBA_RETRY__RETRY_LEVEL=1\n")
    (in_tmp_cwd / ".env").write_text("MAMBA_LOGGING__LEVEL=WARNING\n")
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "gpt-4o")
    (in_tmp_cwd / "config.toml").write_text('[model_backend]\nmodel = "gpt-4o-mini"\n')
    settings = AgentSettings()
    assert settings.model_backend.model == "gpt-4o"
    assert settings.logging.level == "WARNING"
    assert settings.retry.retry_level == 1


def test_config_toml(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.toml").write_text(SPEC_CONFIG_TOML)
    settings = AgentSettings()
    assert settings.model_backend.model == "gpt-4o"
    assert settings.model_backend.base_url == "https://api.openai.com/v1"
    assert (settings.logging.level, settings.logging.format, settings.logging.redact_sensitive) == (
        "INFO",
        "json",
        True,
    )
    assert (settings.retry.max_retries, settings.retry.retry_level) == (3, 2)
    assert settings.context.strategy == "hybrid"
    assert (settings.context.trigger_threshold_tokens, settings.context.target_tokens) == (100000, 80000)


def test_agent_runs_from_config_toml(
    spec_server: OpenAIServer, in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAMBA_MODEL_BACKEND__BASE_URL")
    toml = SPEC_CONFIG_TOML.replace("https://api.openai.com/v1", spec_server.url)
    (in_tmp_cwd / "config.toml").write_text(toml)

    agent = Agent(settings=AgentSettings())

    assert agent.run_sync("What is 2 + 2?").output == "4"
    assert spec_server.last_body["model"] == "gpt-4o"
    assert agent.context_manager.config.strategy == "hybrid"


def test_api_key_is_secret_in_repr_and_errors(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-do-not-print-this-9f8e7d"
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__API_KEY", secret)
    settings = AgentSettings()
    assert isinstance(settings.model_backend.api_key, SecretStr)
    assert secret not in repr(settings) and secret not in str(settings)
    assert secret not in settings.model_dump_json()

    monkeypatch.setenv("MAMBA_RETRY__RETRY_LEVEL", "7")
    with pytest.raises(ConfigurationError) as caught:
        AgentSettings()
    assert "retry.retry_level" in str(caught.value) and secret not in str(caught.value)
