from __future__ import annotations

import json
import logging

import pytest
from pydantic import BaseModel, SecretStr

from mamba_worker.config import AgentSettings, ModelBackendSettings
from mamba_worker.observability import (
    MASK,
    RedactingFilter,
    Redactor,
    SecretRegistry,
    redact,
    register_model_secrets,
    register_secret,
    register_secret_str,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-ant-api03-AbCdEf1234567890_xyz here", "key sk-*** here"),
        ("key sk-proj-AbCdEf1234567890abcdef", "key sk-***"),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.SflKxw rest", "Authorization: *** rest"),
        ("-H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "-H 'Authorization: ***'"),
        ("sent bearer abcdefghijklmnop to the server", "sent bearer *** to the server"),
        ("api_key=abc123def, model=gpt", "api_key=***, model=gpt"),
        ("GET /v1?access_token=abc123&limit=5", "GET /v1?access_token=***&limit=5"),
        ("password='hunter2' user='bob'", "password='***' user='bob'"),
        ("client_secret: xyz987", "client_secret: ***"),
        ('{"api_key": "abc 123", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("postgres://mamba:pw0rd@db:5432/app", "postgres://mamba:***@db:5432/app"),
        ("redis://:pw0rd@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ],
)
def test_known_secret_shapes_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=100, prompt_tokens: 5, token_count=3",
        "http://127.0.0.1:8080/path@v1 and tokenizer=cl100k_base",
        "the basic idea: a secret_name=public value",
        "task-1234 sk-short",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_masked_json_stays_valid_json() -> None:
    body = json.dumps({"api_key": "abc", "password": "p w", "n": 1})

    assert json.loads(redact(body)) == {"api_key": MASK, "password": MASK, "n": 1}


def test_registered_secrets_are_masked_anywhere(secret: str) -> None:
    register_secret(secret)

    assert redact(f"x{secret}y and again {secret}") == f"x{MASK}y and again {MASK}"


def test_register_secret_str_registers_the_raw_value(secret: str) -> None:
    register_secret_str(SecretStr(secret))
    register_secret_str(None)

    assert secret not in redact(f"value={secret!r} in a repr: ({secret})")


def test_longer_secret_wins_over_its_prefix() -> None:
    registry = SecretRegistry()
    registry.add("abcd")
    registry.add("abcdefgh")

    assert Redactor(secrets=registry).redact("abcdefgh") == MASK


def test_very_short_values_are_not_registered() -> None:
    registry = SecretRegistry()
    registry.add("abc")

    assert "abc" not in registry
    assert Redactor(secrets=registry).redact("abc abc") == "abc abc"


def test_extra_patterns_are_masked() -> None:
    redactor = Redactor(extra_patterns=[r"ACME-\d{6}"], secrets=SecretRegistry())

    assert redactor.redact("licence ACME-123456 ok") == f"licence {MASK} ok"


def test_register_model_secrets_walks_nested_settings(secret: str) -> None:
    class Inner(BaseModel):
        token: SecretStr
        names: list[str]

    class Outer(BaseModel):
        inner: Inner
        by_name: dict[str, SecretStr]

    other = secret + "-2"
    found = register_model_secrets(
        Outer(inner=Inner(token=SecretStr(secret), names=[]), by_name={"x": SecretStr(other)})
    )

    assert found == 2
    assert redact(f"{secret} {other}") == f"{MASK} {MASK}"


def test_register_model_secrets_on_agent_settings(secret: str) -> None:
    settings = AgentSettings(model_backend=ModelBackendSettings(api_key=SecretStr(secret)))

    register_model_secrets(settings)

    assert redact(f"openai said: invalid key {secret}") == f"openai said: invalid key {MASK}"


def test_redact_value_masks_secret_str_and_sensitive_keys(secret: str) -> None:
    redactor = Redactor(secrets=SecretRegistry())

    value = redactor.redact_value(
        {
            "headers": {"Authorization": "anything", "accept": "json"},
            "key": SecretStr(secret),
            "items": ("sk-abcdefghijkl",),
        }
    )

    assert value == {"headers": {"Authorization": MASK, "accept": "json"}, "key": "**********", "items": ("sk-***",)}
    assert secret in redactor.secrets  # a SecretStr seen once is masked from then on


def make_record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("request failed: api_key=abcdef123")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    record = logging.LogRecord("mamba_worker.test", logging.INFO, __file__, 1, msg, args or None, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_filter_masks_message_args_extras_and_traceback(secret: str) -> None:
    record = make_record("calling with %s and %s", SecretStr(secret), "Bearer abcdefghijkl", exc=True, password="x1")
    record.stack_info = "Stack (most recent call last): sk-abcdefghijklmnop"

    assert RedactingFilter(Redactor(secrets=SecretRegistry())).filter(record)

    assert record.getMessage() == "calling with ********** and Bearer ***"
    assert record.password == MASK  # type: ignore[attr-defined]
    assert record.exc_text is not None and "abcdef123" not in record.exc_text
    assert "api_key=***" in record.exc_text
    assert "abcdefghijklmnop" not in record.stack_info


def test_filter_handles_mapping_args() -> None:
    record = logging.LogRecord(
        "mamba_worker.test", logging.INFO, __file__, 1, "url=%(url)s", ({"url": "https://u:pw@h/"},), None
    )

    RedactingFilter().filter(record)

    assert record.getMessage() == "url=https://u:***@h/"
