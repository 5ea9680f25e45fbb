"""Rows to wire models, and the list cursor (for `RunStore`)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, select

from mamba_client.schemas import Run, StepRecord, Usage
from mamba_worker.durable.errors import InvalidCursorError
from mamba_worker.durable.store._tables import RUNS, STEPS

# Everything but the state document, which can be large and which the API never shows.
_RUN_COLUMNS = [column for column in RUNS.c if column.name != "state"]
STEP_COLUMNS = [column for column in STEPS.c if column.name != "checkpoint"]
"""The ``steps`` columns `to_step` needs (the checkpoint is left out)."""


def run_select() -> Select[Any]:
    """Runs joined with their newest step, without the state document."""
    return select(
        *_RUN_COLUMNS,
        STEPS.c.name.label("current_step"),
        STEPS.c.attempt.label("current_attempt"),
    ).outerjoin(STEPS, and_(STEPS.c.run_id == RUNS.c.id, STEPS.c.seq == RUNS.c.last_seq))


def to_run(row: Row[Any]) -> Run:
    """A `run_select` row as a `Run`."""
    m = row._mapping
    return Run(
        id=m["id"],
        workflow=m["workflow"],
        status=m["status"],
        input=m["input"],
        model=m["model"],
        tools=m["tools"],
        options=m["options"],
        queue=m["queue"],
        priority=m["priority"],
        metadata=m["run_metadata"],
        idempotency_key=m["idempotency_key"],
        output=m["output"],
        error=m["error"],
        waiting=m["waiting"],
        usage=_usage_of(m),
        current_seq=m["last_seq"],
        current_step=m["current_step"],
        current_attempt=m["current_attempt"] or 0,
        cancel_requested=m["cancel_requested"],
        parent_run_id=m["parent_run_id"],
        parent_seq=m["parent_seq"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        finished_at=m["finished_at"],
    )


def to_step(row: Row[Any]) -> StepRecord:
    """A `STEP_COLUMNS` row as a `StepRecord`."""
    m = row._mapping
    return StepRecord(
        run_id=m["run_id"],
        seq=m["seq"],
        name=m["name"],
        status=m["status"],
        attempt=m["attempt"],
        worker=m["lease_owner"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        error=m["error"],
        usage=_usage_of(m),
    )


def _usage_of(mapping: Any) -> Usage:
    return Usage(
        input_tokens=mapping["input_tokens"],
        output_tokens=mapping["output_tokens"],
        cache_read_tokens=mapping["cache_read_tokens"],
        cache_write_tokens=mapping["cache_write_tokens"],
        requests=mapping["requests"],
        cost_usd=mapping["cost_usd"],
    )


def encode_cursor(last: Run) -> str:
    """The opaque cursor of the page that follows ``last``."""
    raw = json.dumps([last.created_at.isoformat(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor encodes.

    Raises:
        InvalidCursorError: It is not a cursor `encode_cursor` made.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None or not isinstance(run_id, str):
            raise ValueError(cursor)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise InvalidCursorError(
            f"cursor {cursor!r} is not one this server returned; pass next_cursor as is"
        ) from error
    return parsed, run_id
