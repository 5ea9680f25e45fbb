"""Secret redaction: the patterns, the registry of known secret values, and the logging filter.

Two kinds of secret are masked. Shapes we can recognise without being told (provider API keys,
bearer tokens, ``Authorization`` headers, ``api_key=...`` pairs, passwords in URLs), and exact
values someone registered (`register_secret`, `register_secret_str`), which covers every
`SecretStr` in the settings however it is shaped. A `SecretStr` seen in a log record is registered
on the way, so its raw value is masked from then on wherever it turns up.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "***"
"""What a secret is replaced with."""

_MIN_SECRET_LENGTH = 4
"""Shorter registered values are ignored: masking every "abc" would make logs unreadable."""

_KEY_NAMES = (
    r"[a-z0-9_\-]*?(?:api[_\-]?key|access[_\-]?key|secret[_\-]?key|secret|token|password|passwd|pwd"
    r"|credentials?|private[_\-]?key|client[_\-]?secret)"
)

# A mapping key (an extra's name, a header, a settings field) whose value is a secret whatever it looks like.
_SENSITIVE_KEY = re.compile(rf"(?i)^(?:{_KEY_NAMES}|authorization)$")


def is_sensitive_key(key: object) -> bool:
    """Whether a mapping key or field name says that its value is a secret (``api_key``, ``password``)."""
    return isinstance(key, str) and _SENSITIVE_KEY.match(key) is not None


def _mask_pair(match: re.Match[str]) -> str:
    # Keep the quotes so that masked JSON and reprs stay readable (and JSON stays parseable).
    if match.group("dq") is not None:
        return f'{match.group("key")}"{MASK}"'
    if match.group("sq") is not None:
        return f"{match.group('key')}'{MASK}'"
    return f"{match.group('key')}{MASK}"


# Order matters: a header is masked whole before the bearer pattern could leave half of it.
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Authorization: Bearer abc / "authorization": "Basic xyz"
    (re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)(?:[a-z]+\s+)?[^\s"',;}]+"""), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer)\s+[a-z0-9\-._~+/]{8,}=*"), rf"\g<1> {MASK}"),
    # OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...) and look-alike provider keys.
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), f"sk-{MASK}"),
    # key="value", key='value', "key": "value", key=value (query strings, env dumps, kwargs reprs).
    (
        re.compile(
            rf"""(?i)(?P<key>\b{_KEY_NAMES}["']?\s*[:=]\s*)"""
            r"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"',;&)}\]]+))"""
        ),
        _mask_pair,
    ),
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(@)"), rf"\g<1>{MASK}\g<2>"),
)


class SecretRegistry:
    """A thread-safe set of exact secret values to mask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Mask `value` from now on (values shorter than 4 characters are ignored)."""
        if len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def clear(self) -> None:
        """Forget every registered value."""
        with self._lock:
            self._values.clear()
            self._pattern = None

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._values

    def pattern(self) -> re.Pattern[str] | None:
        """One alternation of every value, longest first so that a secret's prefix never wins."""
        with self._lock:
            if self._pattern is None and self._values:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


_DEFAULT_SECRETS = SecretRegistry()


class Redactor:
    """Masks secrets in text and in nested values.

    Args:
        extra_patterns: Additional regular expressions whose whole matches are masked.
        secrets: The registry of exact values; the process-wide one by default.
    """

    def __init__(self, *, extra_patterns: Iterable[str] = (), secrets: SecretRegistry | None = None) -> None:
        self.secrets = secrets if secrets is not None else _DEFAULT_SECRETS
        self.extra_patterns = tuple(re.compile(p) for p in extra_patterns)

    def redact(self, text: str) -> str:
        """Return `text` with every secret masked."""
        # Exact values first: a registered key must disappear whole, before a shape pattern masks
        # only part of it and leaves the rest unrecognisable.
        registered = self.secrets.pattern()
        if registered is not None:
            text = registered.sub(MASK, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        for pattern in self.extra_patterns:
            text = pattern.sub(MASK, text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Mask secrets in a log argument or extra: strings, `SecretStr`s, and containers of them.

        A `SecretStr`/`SecretBytes` becomes its masked form and its raw value is registered. Other
        objects are returned unchanged (formatters redact their text form).
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, SecretStr):
            self.secrets.add(value.get_secret_value())
            return str(value)
        if isinstance(value, SecretBytes):
            return str(value)
        if isinstance(value, Mapping):
            return {key: self.redact_item(key, item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return type(value)(self.redact_value(item) for item in value)
        return value

    def redact_item(self, key: object, value: Any) -> Any:
        """Redact a keyed value; a key such as ``api_key`` masks its value whatever it looks like."""
        masked = self.redact_value(value)  # first, so that a SecretStr value still gets registered
        return MASK if is_sensitive_key(key) and value is not None else masked


def register_secret(value: str) -> None:
    """Mask `value` in every log record and in `redact` from now on, process-wide."""
    _DEFAULT_SECRETS.add(value)


def register_secret_str(value: SecretStr | None) -> None:
    """Register the raw value behind a `SecretStr` (``None`` is ignored, for optional settings)."""
    if value is not None:
        _DEFAULT_SECRETS.add(value.get_secret_value())


def register_model_secrets(model: BaseModel) -> int:
    """Register every `SecretStr` value found in `model` and its nested models, lists and dicts.

    Call it once with the loaded `AgentSettings` so that the API keys it holds are masked even where
    they turn up raw (in an exception from an HTTP client, say).

    Returns:
        How many values were registered (values shorter than 4 characters are skipped but counted).
    """
    found = 0

    def walk(value: object) -> None:
        nonlocal found
        if isinstance(value, SecretStr):
            _DEFAULT_SECRETS.add(value.get_secret_value())
            found += 1
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(model)
    return found


def redact(text: str) -> str:
    """Return `text` with API keys, tokens, URL passwords and registered secrets masked."""
    return Redactor().redact(text)


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The attributes a record got from ``extra=``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in a record's message, arguments, extras and traceback.

    It rewrites the record in place (the message is formatted once and the arguments dropped), so
    every handler after it sees the masked record too. It never drops a record.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; always keep it."""
        redactor = self.redactor
        if record.args:
            # Mask SecretStr arguments first so that formatting cannot expose them.
            args = record.args
            record.args = (
                redactor.redact_value(dict(args))
                if isinstance(args, Mapping)
                else tuple(redactor.redact_value(a) for a in args)
            )
        record.msg = redactor.redact(record.getMessage())
        record.args = None
        for key, value in record_extras(record).items():
            setattr(record, key, redactor.redact_item(key, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text when it is set, so the raw traceback never reaches output.
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True
