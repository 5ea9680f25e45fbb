from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest
from dirty_equals import IsStr
from pydantic import SecretStr, ValidationError

from mamba_worker.config import LoggingConfig
from mamba_worker.observability import MASK, redact, setup_logging


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(stream)]


def test_returns_the_mamba_worker_logger() -> None:
    logger = setup_logging(LoggingConfig(), stream=io.StringIO())

    assert logger is logging.getLogger("mamba_worker")


def test_calling_twice_installs_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(LoggingConfig(), stream=first)
    logger = setup_logging(LoggingConfig(), stream=second)

    logger.getChild("agent").warning("once")

    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_json_lines_carry_the_fields_and_extras() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(format="json"), stream=stream)

    logging.getLogger("mamba_worker.agent").info("ran %d steps", 3, extra={"run_id": "r-1", "usage": {"tokens": 7}})

    (record,) = json_lines(stream)
    assert record == {
        "timestamp": IsStr(),
        "level": "INFO",
        "logger": "mamba_worker.agent",
        "message": "ran 3 steps",
        "run_id": "r-1",
        "usage": {"tokens": 7},
    }
    assert datetime.fromisoformat(str(record["timestamp"])).tzinfo is not None


def test_json_extra_clashing_with_a_field_is_renamed() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(format="json"), stream=stream)

    logging.getLogger("mamba_worker").info("hi", extra={"level": "deep"})

    (record,) = json_lines(stream)
    assert (record["level"], record["extra_level"]) == ("INFO", "deep")


def test_json_includes_the_redacted_traceback() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(format="json"), stream=stream)

    try:
        raise ConnectionError("could not reach postgres://app:hunter22@db/app")
    except ConnectionError:
        logging.getLogger("mamba_worker").exception("lost the database")

    (record,) = json_lines(stream)
    assert record["message"] == "lost the database"
    exception = str(record["exception"])
    assert "Traceback" in exception and "ConnectionError" in exception
    assert "hunter22" not in exception
    assert "postgres://app:***@db/app" in exception


def test_json_values_it_cannot_encode_are_written_as_redacted_text() -> None:
    class Client:
        def __str__(self) -> str:
            return "Client(api_key=abc123)"

    stream = io.StringIO()
    setup_logging(LoggingConfig(format="json"), stream=stream)

    logging.getLogger("mamba_worker").info("made a client", extra={"client": Client()})

    (record,) = json_lines(stream)
    assert record["client"] == "Client(api_key=***)"


def test_text_lines_have_time_level_logger_message_and_extras() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(format="text"), stream=stream)

    logging.getLogger("mamba_worker.tools").warning("slow tool", extra={"tool": "grep"})

    (line,) = lines(stream)
    timestamp, rest = line.split(" ", 1)
    datetime.fromisoformat(timestamp)
    assert rest == "WARNING mamba_worker.tools: slow tool tool='grep'"


def test_text_without_timestamp() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(include_timestamp=False), stream=stream)

    logging.getLogger("mamba_worker").info("plain")

    assert lines(stream) == ["INFO mamba_worker: plain"]


def test_text_puts_extras_on_the_first_line_before_the_traceback() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(include_timestamp=False), stream=stream)

    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("mamba_worker").exception("failed", extra={"step": 2})

    output = lines(stream)
    assert output[0] == "ERROR mamba_worker: failed step=2"
    assert output[-1] == "ValueError: bad"


def test_level_filters_records() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(level="WARNING", include_timestamp=False), stream=stream)
    logger = logging.getLogger("mamba_worker.agent")

    logger.info("hidden")
    logger.warning("shown")

    assert lines(stream) == ["WARNING mamba_worker.agent: shown"]


@pytest.mark.parametrize("format", ["text", "json"])
def test_secrets_are_redacted_in_messages_args_and_extras(format: str, secret: str) -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(format=format), stream=stream)  # type: ignore[arg-type]
    logger = logging.getLogger("mamba_worker.backends")

    logger.info(
        "calling %s with Authorization: Bearer abcdefghijkl",
        "https://api.example.com",
        extra={"api_key": SecretStr(secret), "headers": {"x-api-key": "k-123"}, "note": "key sk-abcdefghijklmnop"},
    )
    logger.info("the raw value %s leaked later", secret)

    output = stream.getvalue()
    assert secret not in output  # masked as a SecretStr, then as a registered value
    assert "abcdefghijkl" not in output
    assert "k-123" not in output
    assert output.count(MASK) >= 4
    assert redact(secret) == MASK


def test_redaction_can_be_turned_off() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(redact_sensitive=False, include_timestamp=False), stream=stream)

    logging.getLogger("mamba_worker").info("token sk-abcdefghijklmnop")

    assert lines(stream) == ["INFO mamba_worker: token sk-abcdefghijklmnop"]


def test_extra_redact_patterns_apply() -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(extra_redact_patterns=[r"acct-\d+"], include_timestamp=False), stream=stream)

    logging.getLogger("mamba_worker").info("billing acct-991 now")

    assert lines(stream) == [f"INFO mamba_worker: billing {MASK} now"]


def test_invalid_extra_pattern_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        LoggingConfig(extra_redact_patterns=["(unclosed"])


def test_does_not_propagate_unless_asked() -> None:
    assert setup_logging(LoggingConfig(), stream=io.StringIO()).propagate is False
    assert setup_logging(LoggingConfig(propagate=True), stream=io.StringIO()).propagate is True


def test_propagated_records_are_already_redacted(caplog: pytest.LogCaptureFixture) -> None:
    setup_logging(LoggingConfig(propagate=True), stream=io.StringIO())

    with caplog.at_level(logging.INFO):
        logging.getLogger("mamba_worker").info("key %s", "sk-abcdefghijklmnop")

    assert caplog.records[-1].getMessage() == "key sk-***"


def test_defaults_to_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()

    logging.getLogger("mamba_worker").warning("to stderr")

    assert "to stderr" in capsys.readouterr().err
