"""The SQL text `PgPipeline` sends spells statuses as literals; they must be the enums' values."""

from __future__ import annotations

import re

import pytest

from mamba_client.schemas import RunStatus, StepStatus, ToolCallStatus
from mamba_worker.durable.store import _pg_sql

STATEMENTS = {
    "step_guard": _pg_sql.step_guard(("state = %(state)s",)),
    "step_inserts": _pg_sql.step_inserts(successor=True, events=True, chunks=True, replace=True) or "",
    "step_write_once": _pg_sql.step_write_once(
        ("state = %(state)s",), successor=True, events=True, chunks=True, replace=True
    ),
    "CLAIM_RUNNING": _pg_sql.CLAIM_RUNNING,
    "CLAIM_FRESH": _pg_sql.CLAIM_FRESH,
    "RECORD_MODEL_CALL": _pg_sql.RECORD_MODEL_CALL,
    "START_AND_FINISH_TOOL_CALL": _pg_sql.START_AND_FINISH_TOOL_CALL,
    "RESTART_TOOL_CALL": _pg_sql.RESTART_TOOL_CALL,
    "FINISH_TOOL_CALL": _pg_sql.FINISH_TOOL_CALL,
}
STATUSES = {status.value for enum in (RunStatus, StepStatus, ToolCallStatus) for status in enum}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_status_literal_is_a_status_value(name: str) -> None:
    literals = set(re.findall(r"'([a-z_]+)'", STATEMENTS[name]))

    assert literals <= STATUSES, f"{name} spells {sorted(literals - STATUSES)}, which no status enum has"


def test_nothing_to_insert_is_no_statement() -> None:
    assert _pg_sql.step_inserts(successor=False, events=False, chunks=False, replace=False) is None
