from __future__ import annotations

import pytest
from pydantic_ai import models

from tests._support.services import POSTGRES, POSTGRES_URL, RABBITMQ, RABBITMQ_URL, REDIS, REDIS_URL, require

# No test may reach a real model API by accident.
models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ~/mamba.env, .env, config.toml and MAMBA_* variables out of tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    import os

    for name in list(os.environ):
        if name.startswith("MAMBA_") and name not in {"MAMBA_REQUIRE_SERVICES"} and not name.startswith("MAMBA_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Run the test with an empty temporary working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def postgres_url() -> str:
    require(POSTGRES)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    require(REDIS)
    return REDIS_URL


@pytest.fixture
def rabbitmq_url() -> str:
    require(RABBITMQ)
    return RABBITMQ_URL
