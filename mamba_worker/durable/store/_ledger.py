"""Writers for the ledgers: ``tool_calls`` (one row per tool call id) and ``model_calls`` (usage).

A step that is re-run after a crash consults these before calling anything: a tool call recorded as
``finished`` is not run again, and a recorded model response is reused. Every model call's usage is
added to its step's and its run's totals in the same transaction that records it, so the totals
always equal the ledger, retried attempts included.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, update
from sqlmodel import Session

from mamba_client.schemas import ErrorBody, ToolCallStatus, Usage
from mamba_worker.durable.store._sql import connection, insert_ignore
from mamba_worker.durable.store._tables import MODEL_CALLS, RUNS, STEPS, TOOL_CALLS
from mamba_worker.durable.store._types import utcnow
from mamba_worker.errors import UsageError


def record_tool_call_started_txn(
    session: Session,
    *,
    run_id: str,
    seq: int,
    tool_call_id: str,
    tool_name: str,
    idempotent: bool,
    attempt: int,
    args: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record that a tool call is about to run; ``False`` when it was already recorded.

    ``INSERT ... ON CONFLICT (run_id, seq, tool_call_id) DO NOTHING``. A duplicate is harmless: the
    first record wins and stays. ``False`` tells a re-run of the step to look at the existing
    record (`RunStore.get_tool_calls`): ``finished`` means reuse the result; ``started`` means the
    previous attempt crashed mid-call, so rerun it if idempotent (`restart_tool_call_txn`) or mark
    it in doubt (`mark_tool_call_in_doubt_txn`).

    Args:
        session: The caller's session; not committed here.
        run_id: The run.
        seq: The step.
        tool_call_id: The model's id for the call, unique within the step.
        tool_name: The tool.
        idempotent: Whether the tool may safely run twice.
        attempt: The step attempt making the call.
        args: The arguments (JSON text).
        now: The time to record (default: now).
    """
    values = {
        "run_id": run_id,
        "seq": seq,
        "tool_call_id": tool_call_id,
        "tool_name": tool_name,
        "idempotent": idempotent,
        "status": ToolCallStatus.STARTED,
        "attempt": attempt,
        "args": args,
        "result": None,
        "error": None,
        "started_at": now or utcnow(),
        "finished_at": None,
    }
    return insert_ignore(session, TOOL_CALLS, values, conflict=["run_id", "seq", "tool_call_id"]).rowcount == 1


def restart_tool_call_txn(
    session: Session, run_id: str, seq: int, tool_call_id: str, *, attempt: int, now: datetime | None = None
) -> bool:
    """Claim an unfinished call for a later step attempt, to run it again; ``False`` if not restartable.

    ``UPDATE ... SET status = 'started', attempt = :attempt WHERE ... AND status IN ('started',
    'in_doubt', 'failed') AND attempt < :attempt``. Only one attempt can take it over, and a
    finished call is never restarted; repeating the call with the same attempt changes nothing.
    """
    statement = (
        update(TOOL_CALLS)
        .where(
            *_call(run_id, seq, tool_call_id),
            TOOL_CALLS.c.status.in_([ToolCallStatus.STARTED, ToolCallStatus.IN_DOUBT, ToolCallStatus.FAILED]),
            TOOL_CALLS.c.attempt < attempt,
        )
        .values(status=ToolCallStatus.STARTED, attempt=attempt, started_at=now or utcnow(), error=None)
    )
    return connection(session).execute(statement).rowcount == 1


def mark_tool_call_in_doubt_txn(session: Session, run_id: str, seq: int, tool_call_id: str) -> bool:
    """Mark a call that was started but never finished as in doubt; ``False`` if it is not ``started``.

    Repeating it is harmless: an ``in_doubt`` call no longer matches ``status = 'started'``.
    """
    statement = (
        update(TOOL_CALLS)
        .where(*_call(run_id, seq, tool_call_id), TOOL_CALLS.c.status == ToolCallStatus.STARTED)
        .values(status=ToolCallStatus.IN_DOUBT)
    )
    return connection(session).execute(statement).rowcount == 1


def record_tool_call_finished_txn(
    session: Session,
    run_id: str,
    seq: int,
    tool_call_id: str,
    *,
    result: str | None = None,
    error: ErrorBody | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the call's outcome: ``finished`` with ``result`` (JSON text), or ``failed`` with ``error``.

    ``UPDATE ... WHERE ... AND status IN ('started', 'in_doubt')``; ``False`` when the call was
    not started or is already finished. A duplicate is harmless: the first outcome stays.

    Raises:
        UsageError: Both or neither of ``result`` and ``error`` were given (a tool that returned
            nothing has ``result="null"``).
    """
    if (result is None) == (error is None):
        raise UsageError("record_tool_call_finished_txn takes exactly one of result= (JSON text) or error=")
    statement = (
        update(TOOL_CALLS)
        .where(
            *_call(run_id, seq, tool_call_id),
            TOOL_CALLS.c.status.in_([ToolCallStatus.STARTED, ToolCallStatus.IN_DOUBT]),
        )
        .values(
            status=ToolCallStatus.FINISHED if error is None else ToolCallStatus.FAILED,
            result=result,
            error=error,
            finished_at=now or utcnow(),
        )
    )
    return connection(session).execute(statement).rowcount == 1


def record_model_call_txn(
    session: Session,
    *,
    run_id: str,
    seq: int,
    attempt: int,
    call_index: int,
    usage: Usage,
    model_name: str | None = None,
    response: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record a model response and add its usage to the step's and the run's totals.

    ``INSERT ... ON CONFLICT (run_id, seq, attempt, call_index) DO NOTHING``, and the totals are
    incremented only when the row was inserted, in the same transaction. So a duplicate is
    harmless: it neither adds a second row nor counts the tokens twice. Returns whether it was new.

    Args:
        session: The caller's session; not committed here.
        run_id: The run.
        seq: The step.
        attempt: The step attempt that made the request.
        call_index: The request's position within the attempt, from 0.
        usage: What it used and cost.
        model_name: The model that answered.
        response: The raw response (JSON text, e.g. pydantic-ai's ``ModelMessagesTypeAdapter``).
        now: The time to record (default: now).
    """
    values = {
        "run_id": run_id,
        "seq": seq,
        "attempt": attempt,
        "call_index": call_index,
        "model_name": model_name,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "requests": usage.requests,
        "cost_usd": usage.cost_usd,
        "response": response,
        "superseded": False,
        "created_at": now or utcnow(),
    }
    inserted = insert_ignore(session, MODEL_CALLS, values, conflict=["run_id", "seq", "attempt", "call_index"])
    if inserted.rowcount != 1:
        return False
    conn = connection(session)
    totals = usage.model_dump(include=set(_USAGE_COLUMNS))
    params = {"b_run_id": run_id, "b_seq": seq, **{f"b_{name}": value for name, value in totals.items()}}
    conn.execute(_ADD_STEP_USAGE, params)
    conn.execute(_ADD_RUN_USAGE, params)
    return True


def supersede_model_calls_txn(
    session: Session, run_id: str, seq: int, *, attempt: int | None = None, call_index: int | None = None
) -> int:
    """Mark recorded responses as not to be reused (a garbage response, a retried attempt); returns how many.

    Their usage still counts: it was paid. Narrow with ``attempt`` and ``call_index``. Repeating it
    is harmless (already superseded rows stay so).
    """
    statement = update(MODEL_CALLS).where(
        MODEL_CALLS.c.run_id == run_id, MODEL_CALLS.c.seq == seq, MODEL_CALLS.c.superseded.is_(False)
    )
    if attempt is not None:
        statement = statement.where(MODEL_CALLS.c.attempt == attempt)
    if call_index is not None:
        statement = statement.where(MODEL_CALLS.c.call_index == call_index)
    return connection(session).execute(statement.values(superseded=True)).rowcount


def _call(run_id: str, seq: int, tool_call_id: str) -> tuple[ColumnElement[bool], ...]:
    return (TOOL_CALLS.c.run_id == run_id, TOOL_CALLS.c.seq == seq, TOOL_CALLS.c.tool_call_id == tool_call_id)


_USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "requests", "cost_usd")
# Built once (a model call is on every think step's path): see `_steps` for why.
_ADD_STEP_USAGE = (
    update(STEPS)
    .where(STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.seq == bindparam("b_seq"))
    .values({STEPS.c[name]: STEPS.c[name] + bindparam(f"b_{name}") for name in _USAGE_COLUMNS})
)
_ADD_RUN_USAGE = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_run_id"))
    .values({RUNS.c[name]: RUNS.c[name] + bindparam(f"b_{name}") for name in _USAGE_COLUMNS})
)
