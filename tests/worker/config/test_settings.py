from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from mamba_worker.config import AgentSettings
from mamba_worker.errors import ConfigurationError


def test_defaults_need_no_files_and_no_model(in_tmp_cwd: Path) -> None:
    settings = AgentSettings()
    assert settings.model_backend.model is None
    assert settings.retry.retry_level == 2
    assert settings.runtime.database_url.get_secret_value() == "sqlite:///.mamba/mamba.db"


def test_env_nested_with_double_underscore(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "gpt-4o")
    monkeypatch.setenv("MAMBA_LOGGING__FORMAT", "json")
    monkeypatch.setenv("MAMBA_RETRY__RETRY_LEVEL", "3")
    settings = AgentSettings()
    assert (settings.model_backend.model, settings.logging.format, settings.retry.retry_level) == ("gpt-4o", "json", 3)


def test_api_key_is_secret(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__API_KEY", "sk-test-123")
    settings = AgentSettings()
    assert isinstance(settings.model_backend.api_key, SecretStr)
    assert "sk-test-123" not in repr(settings)
    assert settings.model_backend.api_key.get_secret_value() == "sk-test-123"


def test_priority_env_over_dotenv_over_user_env_over_toml(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path.home()
    (in_tmp_cwd / "config.toml").write_text('[model_backend]\nmodel = "toml"\ntimeout = 5\nmax_retries = 9\n')
    (home / "mamba.env").write_text("MAMBA_MODEL_BACKEND__MODEL=user\nMAMBA_MODEL_BACKEND__TIMEOUT=6\n")
    (in_tmp_cwd / ".env").write_text("MAMBA_MODEL_BACKEND__MODEL=dotenv\n")
    settings = AgentSettings()
    assert settings.model_backend.model == "dotenv"
    assert settings.model_backend.timeout == 6  # ~/mamba.env beats config.toml
    assert settings.model_backend.max_retries == 9  # only config.toml sets it
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "env")
    assert AgentSettings().model_backend.model == "env"


def test_config_toml_sections(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.toml").write_text(
        '[context]\nstrategy = "hybrid"\ntrigger_threshold_tokens = 100000\ntarget_tokens = 80000\n'
        '[logging]\nlevel = "INFO"\nformat = "json"\nredact_sensitive = true\n'
    )
    settings = AgentSettings()
    assert settings.context.strategy == "hybrid"
    assert settings.logging.format == "json"


def test_bad_env_value_names_key_and_variable(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__TIMEOUT", "soon")
    with pytest.raises(ConfigurationError) as caught:
        AgentSettings()
    message = str(caught.value)
    assert "model_backend.timeout" in message
    assert "environment variable MAMBA_MODEL_BACKEND__TIMEOUT" in message


def test_bad_toml_value_names_the_file(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.toml").write_text("[retry]\nretry_level = 7\n")
    with pytest.raises(ConfigurationError) as caught:
        AgentSettings()
    assert "retry.retry_level" in str(caught.value)
    assert str(in_tmp_cwd / "config.toml") in str(caught.value)


def test_bad_dotenv_value_names_the_file(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / ".env").write_text("MAMBA_LOGGING__FORMAT=xml\n")
    with pytest.raises(ConfigurationError) as caught:
        AgentSettings()
    assert "MAMBA_LOGGING__FORMAT" in str(caught.value)
    assert str(in_tmp_cwd / ".env") in str(caught.value)


def test_malformed_toml_is_one_clear_error(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.toml").write_text("[model_backend\nmodel = \n")
    with pytest.raises(ConfigurationError, match="config.toml is not valid TOML"):
        AgentSettings()


def test_unknown_key_in_a_section_is_refused(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODLE", "gpt-4o")
    with pytest.raises(ConfigurationError, match="model_backend.modle"):
        AgentSettings()


def test_secret_value_never_in_error(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "config.toml").write_text("[model_backend]\napi_key = 12345678\n")
    # An integer is coerced by nothing: SecretStr requires a string; the message must not echo it.
    with pytest.raises(ConfigurationError) as caught:
        AgentSettings()
    assert "12345678" not in str(caught.value)
    assert "model_backend.api_key" in str(caught.value)


def test_target_above_trigger_is_refused(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_CONTEXT__TARGET_TOKENS", "200000")
    with pytest.raises(ConfigurationError, match="target_tokens"):
        AgentSettings()


def test_workflow_routes_from_config_toml_and_env(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mamba_worker.config import WorkflowRoute

    (in_tmp_cwd / "config.toml").write_text('[runtime.routes.research]\nqueue = "research"\npriority = 7\n')
    assert AgentSettings().runtime.routes == {"research": WorkflowRoute(queue="research", priority=7)}

    (in_tmp_cwd / "config.toml").unlink()  # (sources are merged key by key, as for every section)
    monkeypatch.setenv("MAMBA_RUNTIME__ROUTES", '{"batch_*": {"queue": "bulk", "priority": 0}, "*": {"priority": 3}}')
    assert AgentSettings().runtime.routes == {
        "batch_*": WorkflowRoute(queue="bulk", priority=0),
        "*": WorkflowRoute(priority=3),
    }


def test_a_route_priority_outside_0_to_9_names_the_key(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_RUNTIME__ROUTES", '{"research": {"priority": 10}}')
    with pytest.raises(ConfigurationError, match=r"runtime\.routes\.research\.priority"):
        AgentSettings()
