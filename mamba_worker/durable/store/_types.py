"""Column types that behave the same on SQLite and PostgreSQL.

- `UTCDateTime`: aware UTC datetimes in, aware UTC datetimes out. SQLite has no time zones, so
  values are stored as naive UTC (a fixed-width string that sorts correctly, which the lease and
  outbox queries rely on); PostgreSQL stores ``timestamptz``.
- `EnumText`: a `StrEnum` stored as its value in a ``VARCHAR`` (no native enum type: adding a
  status must not need an ``ALTER TYPE`` migration).
- `JSONText`: a typed value stored as JSON text, serialised and validated by pydantic (faster than
  ``json`` and identical on both databases).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import DateTime, Dialect, String, Text
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous; refusing it keeps lease arithmetic honest.
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (datetime.now(UTC))")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[E], Generic[E]):
    """A `StrEnum` member stored as its value."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum_cls: type[E]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # Validates plain strings too, so a typo never reaches the database.
        return self.enum_cls(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)


class JSONText(TypeDecorator[T], Generic[T]):
    """A value of type ``value_type`` stored as JSON text."""

    impl = Text
    cache_ok = True

    def __init__(self, value_type: Any) -> None:
        super().__init__()
        self.value_type = value_type
        self._adapter: TypeAdapter[T] = TypeAdapter(value_type)

    def process_bind_param(self, value: T | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self._adapter.dump_json(value).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> T | None:
        if value is None:
            return None
        return self._adapter.validate_json(value)
