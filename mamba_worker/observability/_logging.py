"""`setup_logging`: the one place that installs a handler, and the text and JSON formatters."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, assert_never

from mamba_worker.config import LoggingConfig
from mamba_worker.observability._redaction import RedactingFilter, Redactor, record_extras

LOGGER_NAME = "mamba_worker"
"""The logger `setup_logging` configures; every Mamba module logs below it."""


class TextFormatter(logging.Formatter):
    """``[time] LEVEL logger: message key=value ...``, then the traceback if there is one.

    Args:
        include_timestamp: Start each line with an ISO 8601 timestamp.
        redactor: When given, masks secrets in the finished line (a last line of defence for
            extras whose text form only appears here).
    """

    def __init__(self, *, include_timestamp: bool = True, redactor: Redactor | None = None) -> None:
        fmt = (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if include_timestamp
            else "%(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC with milliseconds, the same as the JSON formatter."""
        return _timestamp(record)

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, append its extras, and mask secrets."""
        line = super().format(record)
        extras = record_extras(record)
        if extras:
            head, newline, rest = line.partition("\n")
            pairs = " ".join(f"{key}={value!r}" for key, value in extras.items())
            line = f"{head} {pairs}{newline}{rest}"
        return self.redactor.redact(line) if self.redactor is not None else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    Keys: ``timestamp``, ``level``, ``logger``, ``message``, the extras, and ``exception`` and
    ``stack`` when present. An extra whose name clashes with one of those keys is written as
    ``extra_<name>``. Values JSON cannot encode are written as their ``str()``, masked when a
    redactor is given.

    Args:
        redactor: Masks secrets in values that only become text here.
    """

    _RESERVED = frozenset({"timestamp", "level", "logger", "message", "exception", "stack"})

    def __init__(self, *, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        body: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            body[f"extra_{key}" if key in self._RESERVED else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exception"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, default=self._fallback, ensure_ascii=False)

    def _fallback(self, value: object) -> str:
        text = str(value)
        return self.redactor.redact(text) if self.redactor is not None else text


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _MambaHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup_logging` installs; its class marks it so a second call replaces it."""


def setup_logging(config: LoggingConfig | None = None, *, stream: IO[str] | None = None) -> logging.Logger:
    """Configure the ``mamba_worker`` logger from `config` and return it.

    Installs exactly one handler (calling it again replaces the handler, so output is never
    doubled), sets the level, and, when ``redact_sensitive`` is on, masks API keys, bearer tokens,
    URL passwords and registered `SecretStr` values in every record's message, arguments, extras
    and traceback. Other loggers are left alone; attach a `RedactingFilter` to their handlers to
    mask them too.

    Args:
        config: The ``logging`` settings; defaults to `LoggingConfig()`.
        stream: Where lines go; standard error by default.

    Returns:
        The ``mamba_worker`` logger.
    """
    config = config if config is not None else LoggingConfig()
    redactor = Redactor(extra_patterns=config.extra_redact_patterns) if config.redact_sensitive else None

    formatter: logging.Formatter
    match config.format:
        case "text":
            formatter = TextFormatter(include_timestamp=config.include_timestamp, redactor=redactor)
        case "json":
            formatter = JsonFormatter(redactor=redactor)
        case _:
            assert_never(config.format)

    handler = _MambaHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    if redactor is not None:
        handler.addFilter(RedactingFilter(redactor))

    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if isinstance(h, _MambaHandler)]:
        logger.removeHandler(old)
        old.close()  # leaves the stream open: it belongs to the caller (or is stderr)
    logger.addHandler(handler)
    logger.setLevel(config.level)
    logger.propagate = config.propagate
    return logger
