"""The SQL text `PgPipeline` sends: its status literals are the enums' values, its plans use primary keys."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from mamba_client.schemas import RunStatus, StepStatus, ToolCallStatus
from mamba_worker.durable.store import _pg_sql, _pg_submit
from mamba_worker.durable.store._tables import RUNS
from tests.worker.durable.store.conftest import MakeRun, finished_and_analysed

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
    "SUBMIT_RUN": _pg_submit.SUBMIT_RUN,
}
STATUSES = {status.value for enum in (RunStatus, StepStatus, ToolCallStatus) for status in enum}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_status_literal_is_a_status_value(name: str) -> None:
    literals = set(re.findall(r"'([a-z_]+)'", STATEMENTS[name]))

    assert literals <= STATUSES, f"{name} spells {sorted(literals - STATUSES)}, which no status enum has"


def test_nothing_to_insert_is_no_statement() -> None:
    assert _pg_sql.step_inserts(successor=False, events=False, chunks=False, replace=False) is None


_TIMES = {"now", "expires", "event_time", "next_expires", "next_started"}


def _generic_plan(connection: sa.Connection, statement: str) -> str:
    """The plan PostgreSQL caches for ``statement`` prepared (``force_generic_plan``), as text."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    numbered = re.sub(r"%\((\w+)\)[sb]", number, statement)
    # The server infers the rest; a time in a ``UNION`` would be inferred as text.
    types = ", ".join("timestamptz" if name in _TIMES else "unknown" for name in names)
    connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    connection.exec_driver_sql(f"PREPARE commit_step ({types}) AS {numbered}")
    rows = connection.exec_driver_sql(f"EXPLAIN EXECUTE commit_step({', '.join(['NULL'] * len(names))})").all()
    # Neither outlives the test on the pooled connection (a rollback would not undo the PREPARE).
    connection.exec_driver_sql("DEALLOCATE commit_step")
    connection.exec_driver_sql("RESET plan_cache_mode")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_a_per_step_statement_finds_its_rows_by_primary_key(engine: sa.Engine, make_run: MakeRun, name: str) -> None:
    # Statistics in which 'running' is rare, as on a quiet deployment: many finished runs of
    # committed steps. A generic plan that scanned the status indexes for a guard's 'running' (or a
    # claim's 'pending') would read every running step and run on each statement once the load
    # came back; the prepared statement keeps its plan.
    for _ in range(150):
        make_run(steps=("think", "act", "observe"))
    finished_and_analysed(engine, runs="status = 'succeeded'", steps="status = 'committed'")

    with engine.connect() as connection:
        plan = _generic_plan(connection, STATEMENTS[name])
        connection.rollback()

    scans = set(re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", plan))
    assert all(scan.startswith("pk_") for scan in scans), plan
    assert "Seq Scan" not in plan, plan


def test_a_submit_writes_every_column_of_runs() -> None:
    assert list(_pg_submit.RUN_VALUES) == [column.name for column in RUNS.c]
