"""`AgentSettings`: the root of Mamba's configuration, and where each value came from.

Sources, highest priority first: arguments to `AgentSettings(...)`, environment variables,
``.env`` in the working directory, ``~/mamba.env``, ``config.toml`` in the working directory,
defaults. Environment variables use the ``MAMBA_`` prefix and ``__`` for nesting
(``MAMBA_MODEL_BACKEND__MODEL``).

A bad value raises `ConfigurationError` naming the key and the source it came from (so a user
knows which file or variable to fix), and never the value of a secret.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mamba_worker.config._compaction import CompactionConfig
from mamba_worker.config._logging import LoggingConfig
from mamba_worker.config._model_backend import ModelBackendSettings
from mamba_worker.config._prompts import PromptConfig
from mamba_worker.config._recovery import ErrorRecoveryConfig
from mamba_worker.config._runtime import RuntimeSettings
from mamba_worker.config._tokenizer import TokenizerConfig
from mamba_worker.errors import ConfigurationError

ENV_PREFIX = "MAMBA_"
NESTED_DELIMITER = "__"
CONFIG_TOML = "config.toml"
DOTENV = ".env"

# Keys whose values are never echoed in an error message.
_SECRET_HINTS = ("key", "token", "secret", "password", "url", "header")


@dataclass(frozen=True)
class _SourceRecord:
    label: str
    values: dict[str, Any]


# Filled while one AgentSettings is being built, so a validation error can say which source a
# bad value came from. A ContextVar keeps concurrent constructions (threads, tasks) apart.
_loaded_sources: ContextVar[list[_SourceRecord] | None] = ContextVar("_loaded_sources", default=None)


class _TracedSource(PydanticBaseSettingsSource):
    """Delegates to a real source and remembers what it produced, under a label for people."""

    def __init__(self, inner: PydanticBaseSettingsSource, label: str) -> None:
        super().__init__(inner.settings_cls)
        self._inner = inner
        self._label = label

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self._inner()
        records = _loaded_sources.get()
        if records is not None:
            records.append(_SourceRecord(self._label, values))
        return values


class AgentSettings(BaseSettings):
    """All of Mamba's settings.

    Example:
        ```python
        settings = AgentSettings()  # env > .env > ~/mamba.env > config.toml > defaults
        settings.model_backend.model
        ```
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=DOTENV,
        env_file_encoding="utf-8",
        # MAMBA_* variables that are not settings (MAMBA_REQUIRE_SERVICES, ...) are fine at the
        # top level; inside a section an unknown key is an error (each section forbids extras).
        extra="ignore",
        validate_default=True,
    )

    model_backend: ModelBackendSettings = Field(default_factory=ModelBackendSettings)
    """Which model to use and how to reach it."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Log level, format and redaction."""
    retry: ErrorRecoveryConfig = Field(default_factory=ErrorRecoveryConfig)
    """Retry and circuit-breaker behaviour."""
    context: CompactionConfig = Field(default_factory=CompactionConfig)
    """Context compaction."""
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    """Prompt templates."""
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    """Token counting."""
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    """The durable runtime: state store, broker, leases."""

    def __init__(self, **values: Any) -> None:
        with _tracing_sources() as records:
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise ConfigurationError(_describe(error, records)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, env, ``.env``, ``~/mamba.env``, ``config.toml``."""
        user_env = Path.home() / "mamba.env"
        try:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=CONFIG_TOML)
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(
                f"{Path(CONFIG_TOML).resolve()} is not valid TOML: {error}. Fix the file or remove it."
            ) from None
        return (
            _TracedSource(init_settings, "arguments to AgentSettings()"),
            _TracedSource(env_settings, "environment variable"),
            _TracedSource(dotenv_settings, f"file {Path(DOTENV).resolve()}"),
            _TracedSource(DotEnvSettingsSource(settings_cls, env_file=user_env), f"file {user_env}"),
            _TracedSource(toml, f"file {Path(CONFIG_TOML).resolve()}"),
        )


@contextmanager
def _tracing_sources() -> Iterator[list[_SourceRecord]]:
    records: list[_SourceRecord] = []
    token = _loaded_sources.set(records)
    try:
        yield records
    finally:
        _loaded_sources.reset(token)


def _describe(error: ValidationError, records: list[_SourceRecord]) -> str:
    lines = ["Invalid Mamba settings:"]
    for item in error.errors(include_url=False):
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc)
        origin = _origin(loc, records)
        secret = any(hint in part.lower() for part in loc for hint in _SECRET_HINTS)
        shown = "" if secret or item["type"] == "missing" else f" = {item.get('input')!r}"
        lines.append(f"  - {key}{shown} (from {origin}): {item['msg']}")
    lines.append(
        f"Set it with {ENV_PREFIX}{NESTED_DELIMITER.join(p.upper() for p in _first_loc(error))}, "
        f"in .env or ~/mamba.env, or under [{_first_loc(error)[0]}] in {CONFIG_TOML}."
    )
    return "\n".join(lines)


def _first_loc(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(part) for part in error.errors()[0]["loc"]) or ("settings",)


def _origin(loc: tuple[str, ...], records: list[_SourceRecord]) -> str:
    """The highest-priority source that supplied ``loc`` (or its section), for the message."""
    for depth in range(len(loc), 0, -1):
        for record in records:
            if not _lookup(record.values, loc[:depth]):
                continue
            variable = ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in loc[:depth])
            if record.label == "environment variable":
                return f"{record.label} {variable}"
            if record.label.endswith("env"):
                return f"{variable} in {record.label}"
            return record.label
    return "defaults"


def _lookup(values: dict[str, Any], path: tuple[str, ...]) -> bool:
    current: Any = values
    for part in path:
        if not isinstance(current, dict) or part not in current:
            return False
        current = current[part]
    return True
