"""The SQL text `PgPipeline` sends: the ``*_txn`` writers' statements, folded into as few as possible.

On PostgreSQL each statement costs the server about as much as a round trip (0.1-0.15 ms on the
benchmark machine), so the per-step writes are folded into data-modifying CTEs: a step commit is
one autocommitted statement (`step_write_once`) when the writer knows the run's event counter,
else ``BEGIN``, one guard statement, one insert statement and ``COMMIT``, where the ``*_txn``
writers make seven to ten statements. Each statement here says which writers it stands for; the status
values are the `mamba_client.schemas` enums' (``tests/worker/durable/store/test_pg_sql.py`` keeps
them equal).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, assert_never

from mamba_client.schemas import Event, StepStarted, StepStatus
from mamba_worker.durable.store._chunks import StateChunk
from mamba_worker.durable.store._step_write import SuccessorWrite, ToolCallResult
from mamba_worker.durable.store._tables import RUNS

USAGE = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "requests", "cost_usd")
"""The usage columns of ``runs``, ``steps`` and ``model_calls``, in this order."""

RUN_COLUMNS = tuple(RUNS.c)
"""Every column of ``runs``, in the order `CLAIM_RUNNING` returns them (after the claim's two)."""

# The step is found by its primary key and locked, and only then checked held (by whom, which
# attempt): with the guard's columns in the scan's own ``WHERE``, the planner's generic plan for
# the prepared statement used the ``status`` indexes of ``steps`` and ``runs`` (rare ``'running'``
# in the statistics), a scan that grows with every running step and run. `_LOCKED_RUN` likewise.
_LOCKED_STEP = (
    "ls AS (SELECT status, lease_owner, attempt FROM steps WHERE run_id = %(run_id)s AND seq = %(seq)s FOR UPDATE)"
)
_HELD = "EXISTS (SELECT 1 FROM ls WHERE status = 'running' AND lease_owner = %(owner)s AND attempt = %(attempt)s)"
_LOCKED_RUN = (
    "lr AS (SELECT status, cancel_requested, next_event_seq FROM runs WHERE id = %(run_id)s AND {after} FOR UPDATE)"
)
_RUNNING = "EXISTS (SELECT 1 FROM lr WHERE status = 'running' AND cancel_requested IS false{more})"


@functools.cache
def step_guard(run_sets: tuple[str, ...]) -> str:
    """`mark_step_committed_txn` + `advance_run_txn`: both guards, the run's new values, its totals.

    One row: how many steps were marked (0: the lease is lost), then the run's new
    ``next_event_seq`` and usage totals (NULL: the run stopped). The run is only updated when the
    step was marked. Guard failures are left for the caller to roll back: the statement runs in
    its transaction, which the caller commits only when both guards held.
    """
    return (
        f"WITH {_LOCKED_STEP}, s AS (UPDATE steps SET status = 'committed', lease_owner = NULL, "
        "lease_expires_at = NULL, finished_at = %(now)s WHERE run_id = %(run_id)s AND seq = %(seq)s "
        f"AND {_HELD} RETURNING 1), {_LOCKED_RUN.format(after='EXISTS (SELECT 1 FROM s)')}, "
        f"r AS (UPDATE runs SET {', '.join(run_sets)} WHERE id = %(run_id)s AND {_RUNNING.format(more='')} "
        f"RETURNING next_event_seq, {', '.join(USAGE)}) "
        f"SELECT (SELECT count(*) FROM s), r.next_event_seq, {', '.join('r.' + name for name in USAGE)} "
        "FROM (SELECT 1) AS one LEFT JOIN r ON true"
    )


@functools.cache
def step_write_once(
    run_sets: tuple[str, ...], *, successor: bool, events: bool, chunks: bool, replace: bool, tool_results: bool = False
) -> str:
    """The whole of `write_step_txn` in one statement, for a writer that knows the run's event counter.

    Nothing is written unless every guard holds, so the statement can run on its own
    (autocommit): the step is locked and checked held, then the run is locked and checked running,
    not asked to cancel, and at ``next_event_seq = %(expected_seq)s`` (the events were numbered
    from it before the statement was sent); only then are both updated and the rows inserted,
    each insert reading its go-ahead from the previous CTE's ``RETURNING``. The locks are taken
    step first, then run, the order of every other writer of both (the claim, the two-statement
    commit), so two writers never wait on each other in a cycle.

    One row: 1 and the run's new ``next_event_seq`` and usage totals when written; 0 and NULLs
    when not (lease lost, run stopped, or another writer appended events: the caller takes the
    two-statement path, which tells them apart).

    ``tool_results``: the finished calls' ledger rows (`StepWrite.tool_results`) are written too,
    whatever the guards say (the calls did finish), in the statement's one transaction.
    """
    ctes = [_FINISH_TOOL_CALLS] if tool_results else []
    ctes += [
        _LOCKED_STEP,
        _LOCKED_RUN.format(after=_HELD),
        "s AS (UPDATE steps SET status = 'committed', lease_owner = NULL, lease_expires_at = NULL, "
        "finished_at = %(now)s WHERE run_id = %(run_id)s AND seq = %(seq)s AND "
        + _RUNNING.format(more=" AND next_event_seq = %(expected_seq)s")
        + " RETURNING 1)",
        f"r AS (UPDATE runs SET {', '.join(run_sets)} WHERE id = %(run_id)s AND EXISTS (SELECT 1 FROM s) "
        f"RETURNING next_event_seq, {', '.join(USAGE)})",
    ]
    ctes += _chunk_ctes(chunks=chunks, replace=replace, after_run=True)
    if successor:
        ctes += [_INSERT_STEP_AFTER_RUN, _INSERT_OUTBOX]
    if events:
        ctes.append(f"ev AS ({_INSERT_EVENTS} WHERE EXISTS (SELECT 1 FROM r))")
    return (
        f"WITH {', '.join(ctes)} "
        f"SELECT (SELECT count(*) FROM s), r.next_event_seq, {', '.join('r.' + name for name in USAGE)} "
        "FROM (SELECT 1) AS one LEFT JOIN r ON true"
    )


_STEP_COLUMNS = (
    "steps (run_id, seq, name, status, attempt, lease_owner, lease_expires_at, started_at, checkpoint, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests, cost_usd, created_at)"
)
_STEP_VALUES = (
    "%(run_id)s, %(next_seq)s, %(next_name)s, %(next_status)s, %(next_attempt)s, %(next_owner)s, "
    "%(next_expires)s, %(next_started)s, NULL, 0, 0, 0, 0, 0, 0, %(now)s"
)
_INSERT_STEP = f"st AS (INSERT INTO {_STEP_COLUMNS} VALUES ({_STEP_VALUES}) RETURNING run_id, seq)"
# The same, inserted only when the run's update (CTE ``r``) was made.
_INSERT_STEP_AFTER_RUN = f"st AS (INSERT INTO {_STEP_COLUMNS} SELECT {_STEP_VALUES} FROM r RETURNING run_id, seq)"
# The outbox row is stamped dispatched (attempt 1, the task id): the writer sends right after.
# Its foreign key to the step inserted in `_INSERT_STEP` is checked at the end of the statement.
_INSERT_OUTBOX = (
    "ob AS (INSERT INTO outbox (run_id, seq, task_name, queue, priority, attempt, task_id, created_at, "
    "queued_at, not_before, dispatched_at) SELECT st.run_id, st.seq, %(task_name)s, %(queue)s, %(priority)s, "
    "1, %(task_id)s, %(now)s, %(now)s, NULL, %(now)s FROM st ON CONFLICT (run_id, seq) DO NOTHING RETURNING 1)"
)
# The arrays are sent in binary (``%(...)b``): psycopg's text format escapes every element of a
# text array with a regular expression in Python, a measurable share of a step's CPU for the
# events' kilobytes of JSON.
_INSERT_EVENTS = (
    "INSERT INTO events (run_id, seq, type, payload, created_at) SELECT %(run_id)s, e.seq, e.type, e.payload, "
    "e.created_at FROM unnest(%(event_seqs)b::bigint[], %(event_types)b::text[], %(event_payloads)b::text[], "
    "%(event_times)b::timestamptz[]) AS e(seq, type, payload, created_at)"
)


# `record_tool_call_started_txn` + `record_tool_call_finished_txn` for calls never recorded (as
# START_AND_FINISH_TOOL_CALL, below), for a whole list of them.
_FINISH_TOOL_CALLS = (
    "tr AS (INSERT INTO tool_calls AS t (run_id, seq, tool_call_id, tool_name, idempotent, status, attempt, args, "
    "result, error, started_at, finished_at) SELECT %(run_id)s, %(seq)s, u.id, u.name, u.idempotent, 'finished', "
    "u.attempt, u.args, u.result, NULL, %(now)s, %(now)s FROM unnest(%(tool_ids)b::text[], %(tool_names)b::text[], "
    "%(tool_idempotent)b::boolean[], %(tool_attempts)b::int[], %(tool_args)b::text[], %(tool_results)b::text[]) "
    "AS u(id, name, idempotent, attempt, args, result) ON CONFLICT (run_id, seq, tool_call_id) DO UPDATE SET "
    "status = 'finished', result = EXCLUDED.result, error = NULL, finished_at = EXCLUDED.finished_at "
    "WHERE t.status IN ('started', 'in_doubt'))"
)

# `write_state_chunks_txn`: a replaced list's old chunks go (they all have a lower ``seq`` than
# the one inserted, so the delete and the insert never touch the same key), the new chunks come.
_DELETE_CHUNKS = (
    "chd AS (DELETE FROM state_chunks WHERE run_id = %(run_id)s AND field = ANY(%(replaced_fields)b::text[]){cond})"
)
_INSERT_CHUNKS = (
    "chi AS (INSERT INTO state_chunks (run_id, field, seq, data) SELECT %(run_id)s, c.field, %(seq)s, c.data "
    "FROM unnest(%(chunk_fields)b::text[], %(chunk_data)b::text[]) AS c(field, data){where})"
)


def _chunk_ctes(*, chunks: bool, replace: bool, after_run: bool) -> list[str]:
    """The CTEs that write the state's chunks; ``after_run``: only once the run's update (``r``) was made."""
    if not chunks:
        return []
    ran = " AND EXISTS (SELECT 1 FROM r)" if after_run else ""
    ctes = [_DELETE_CHUNKS.format(cond=ran)] if replace else []
    return [*ctes, _INSERT_CHUNKS.format(where=" WHERE EXISTS (SELECT 1 FROM r)" if after_run else "")]


@functools.cache
def step_inserts(*, successor: bool, events: bool, chunks: bool, replace: bool) -> str | None:
    """`write_state_chunks_txn` + `insert_step_txn` + `insert_outbox_txn` + `insert_events_txn`, at once.

    One statement; ``None``: nothing to insert.
    """
    ctes = _chunk_ctes(chunks=chunks, replace=replace, after_run=False)
    if successor:
        ctes += [_INSERT_STEP, _INSERT_OUTBOX]
    if events:
        return (f"WITH {', '.join(ctes)} " if ctes else "") + _INSERT_EVENTS
    if ctes:
        # Data-modifying CTEs run whether or not the query reads them.
        return f"WITH {', '.join(ctes)} SELECT 1"
    return None


INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, type, payload, created_at) "
    "VALUES (%(run_id)s, %(seq)s, %(type)s, %(payload)s, %(created_at)s)"
)

_CLAIM_STEP = (
    # `claim_running_step_txn`: the claim ({which}), guarded by the run's status ({run}). The run is
    # found by primary key and checked after (``rs``), as the commit's guards are (`_LOCKED_STEP`):
    # a generic plan must never scan a status index for it. The step's own test stays in the
    # ``UPDATE``'s ``WHERE``: a claim that waited on a concurrent one re-tests it on the row that
    # claim left, so only one of them claims.
    # MATERIALIZED: inlined into the EXISTS below, the status test would be the scan's again.
    "rs AS MATERIALIZED (SELECT status, cancel_requested FROM runs WHERE id = %(run_id)s), "
    "c AS (UPDATE steps SET status = 'running', lease_owner = %(owner)s, lease_expires_at = %(expires)s, "
    "attempt = attempt + 1, started_at = %(now)s WHERE run_id = %(run_id)s AND seq = %(seq)s AND {which} "
    "AND EXISTS (SELECT 1 FROM rs WHERE status {run} AND cancel_requested IS false) RETURNING attempt, name)"
)
_CLAIM = (
    _CLAIM_STEP.replace("{run}", "= 'running'") + ", "
    # `reserve_events_txn`: only if the claim was made, the run's next event number reserved and the
    # whole run read back.
    "r AS (UPDATE runs SET next_event_seq = next_event_seq + 1 WHERE id = %(run_id)s "
    f"AND EXISTS (SELECT 1 FROM c) RETURNING {', '.join(column.name for column in RUN_COLUMNS)})"
)
_CLAIMED_COLUMNS = (
    f"c.attempt, c.name, {', '.join('r.' + column.name for column in RUN_COLUMNS)}, ch.fields, ch.data, ch.kept"
)
# `read_state_chunks_txn`: the state's journal lists, in the same round trip: the chunks written
# after step %(after_seq)s (-1: all), and one field name per chunk up to it (their count per field).
_CHUNKS = (
    "LEFT JOIN LATERAL (SELECT array_agg(field ORDER BY field, seq) FILTER (WHERE seq > %(after_seq)s) AS fields, "
    "array_agg(data ORDER BY field, seq) FILTER (WHERE seq > %(after_seq)s) AS data, "
    "array_agg(field) FILTER (WHERE seq <= %(after_seq)s) AS kept "
    "FROM state_chunks WHERE run_id = %(run_id)s) AS ch ON true"
)
_CLAIMED = f"SELECT {_CLAIMED_COLUMNS} FROM c JOIN r ON true {_CHUNKS}"

CLAIM_RUNNING = (
    # The claim and the run read back; the caller inserts the ``step.started`` event and commits.
    "WITH "
    + _CLAIM.format(
        which="(status IN ('pending', 'dispatched') OR (status = 'running' AND lease_expires_at < %(now)s))"
    )
    + " "
    + _CLAIMED
)

CLAIM_FRESH = (
    # The same and the ``step.started`` insert in one autocommitted statement, for a step never
    # claimed (attempt 0 -> 1: within any attempt allowance, so the caller has nothing to check).
    # The caller sends the event's JSON around the two values only SQL knows, its number and the
    # step's name, which are spliced in as pydantic writes them. Nothing is written unless the
    # claim is made, so no rollback is ever needed. A run's first step also finds the run
    # ``pending``: then the run starts too (`update_run_txn` to ``running``) and ``run.started``
    # comes first, numbered just before (what the general path writes, in one round trip instead
    # of seven). The run is locked after the step (``pr``), as by every other writer, and its
    # status is read from the locked row: a cancel that got there first is never overwritten.
    "WITH "
    + _CLAIM_STEP.format(which="attempt = 0 AND status IN ('pending', 'dispatched')", run="IN ('running', 'pending')")
    + ", pr AS (SELECT status = 'pending' AS first FROM runs WHERE id = %(run_id)s AND EXISTS (SELECT 1 FROM c) "
    "FOR UPDATE), "
    "r AS (UPDATE runs SET next_event_seq = next_event_seq + 1 + pr.first::int, "
    "status = CASE WHEN pr.first THEN 'running' ELSE runs.status END, "
    "updated_at = CASE WHEN pr.first THEN %(now)s ELSE runs.updated_at END, "
    "finished_at = CASE WHEN pr.first THEN NULL ELSE runs.finished_at END FROM pr WHERE runs.id = %(run_id)s "
    f"RETURNING {', '.join('runs.' + column.name for column in RUN_COLUMNS)}), "
    "ev AS (INSERT INTO events (run_id, seq, type, payload, created_at) SELECT %(run_id)s, r.next_event_seq - 1, "
    "%(event_type)s, %(event_head)s || (r.next_event_seq - 1)::text || %(event_mid)s || to_json(c.name)::text "
    "|| %(event_tail)s, %(event_time)s FROM r JOIN c ON true UNION ALL SELECT %(run_id)s, r.next_event_seq - 2, "
    "%(run_event_type)s, %(run_event_head)s || (r.next_event_seq - 2)::text || %(run_event_tail)s, %(event_time)s "
    f"FROM r JOIN pr ON pr.first) SELECT pr.first, {_CLAIMED_COLUMNS} FROM c JOIN r ON true JOIN pr ON true {_CHUNKS}"
)

RECORD_MODEL_CALL = (
    # `record_model_call_txn`: the row, and only if it is new, the step's and the run's totals.
    "WITH ins AS (INSERT INTO model_calls (run_id, seq, attempt, call_index, model_name, "
    + ", ".join(USAGE)
    + ", response, superseded, created_at) VALUES (%(run_id)s, %(seq)s, %(attempt)s, %(call_index)s, "
    "%(model_name)s, " + ", ".join(f"%({name})s" for name in USAGE) + ", %(response)s, false, %(now)s) "
    "ON CONFLICT (run_id, seq, attempt, call_index) DO NOTHING RETURNING " + ", ".join(USAGE) + "), "
    "s AS (UPDATE steps SET "
    + ", ".join(f"{name} = steps.{name} + ins.{name}" for name in USAGE)
    + " FROM ins WHERE steps.run_id = %(run_id)s AND steps.seq = %(seq)s), "
    "r AS (UPDATE runs SET "
    + ", ".join(f"{name} = runs.{name} + ins.{name}" for name in USAGE)
    + " FROM ins WHERE runs.id = %(run_id)s) SELECT count(*) FROM ins"
)

_CALL = "run_id = %(run_id)s AND seq = %(seq)s AND tool_call_id = %(tool_call_id)s"

START_AND_FINISH_TOOL_CALL = (
    # `record_tool_call_started_txn` then `record_tool_call_finished_txn`: a new row is inserted
    # finished; a row already there (``started`` or ``in_doubt``) is finished; a finished one stays.
    "INSERT INTO tool_calls AS t (run_id, seq, tool_call_id, tool_name, idempotent, status, attempt, args, "
    "result, error, started_at, finished_at) VALUES (%(run_id)s, %(seq)s, %(tool_call_id)s, %(tool_name)s, "
    "%(idempotent)s, 'finished', %(attempt)s, %(args)s, %(result)s, NULL, %(now)s, %(now)s) "
    "ON CONFLICT (run_id, seq, tool_call_id) DO UPDATE SET status = 'finished', result = EXCLUDED.result, "
    "error = NULL, finished_at = EXCLUDED.finished_at WHERE t.status IN ('started', 'in_doubt')"
)
START_TOOL_CALL = (
    # `record_tool_call_started_txn`.
    "INSERT INTO tool_calls (run_id, seq, tool_call_id, tool_name, idempotent, status, attempt, args, result, "
    "error, started_at, finished_at) VALUES (%(run_id)s, %(seq)s, %(tool_call_id)s, %(tool_name)s, "
    "%(idempotent)s, 'started', %(attempt)s, %(args)s, NULL, NULL, %(now)s, NULL) "
    "ON CONFLICT (run_id, seq, tool_call_id) DO NOTHING"
)
RESTART_TOOL_CALL = (
    # `restart_tool_call_txn`.
    "UPDATE tool_calls SET status = 'started', attempt = %(attempt)s, started_at = %(now)s, error = NULL "
    f"WHERE {_CALL} AND status IN ('started', 'in_doubt', 'failed') AND attempt < %(attempt)s"
)
FINISH_TOOL_CALL = (
    # `record_tool_call_finished_txn` with a result.
    "UPDATE tool_calls SET status = 'finished', result = %(result)s, error = NULL, finished_at = %(now)s "
    f"WHERE {_CALL} AND status IN ('started', 'in_doubt')"
)


def tool_result_statements(done: ToolCallResult, *, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """`record_tool_call_finished_txn` (with the start ``done`` asks for) as statements, the finish last."""
    params = {**dataclasses.asdict(done.call), "result": done.result, "now": now}
    match done.start:
        case "insert":
            return [(START_AND_FINISH_TOOL_CALL, params)]
        case "restart":
            return [(RESTART_TOOL_CALL, params), (FINISH_TOOL_CALL, params)]
        case None:
            return [(FINISH_TOOL_CALL, params)]
        case _:
            assert_never(done.start)


def tool_result_params(results: Sequence[ToolCallResult]) -> dict[str, Any]:
    """`_FINISH_TOOL_CALLS`'s parameters: the calls' columns, as arrays."""
    return {
        "tool_ids": [done.call.tool_call_id for done in results],
        "tool_names": [done.call.tool_name for done in results],
        "tool_idempotent": [done.call.idempotent for done in results],
        "tool_attempts": [done.call.attempt for done in results],
        "tool_args": [done.call.args for done in results],
        "tool_results": [done.result for done in results],
    }


def successor_params(successor: SuccessorWrite, *, now: datetime) -> dict[str, Any]:
    """`_INSERT_STEP`'s and `_INSERT_OUTBOX`'s parameters: the successor, claimed by the writer or not."""
    claimed = successor.claimed_by is not None
    return {
        "next_seq": successor.seq,
        "next_name": successor.name,
        "next_status": (StepStatus.RUNNING if claimed else StepStatus.PENDING).value,
        "next_attempt": 1 if claimed else 0,
        "next_owner": successor.claimed_by,
        "next_expires": now + timedelta(seconds=successor.lease_seconds) if claimed else None,
        "next_started": now if claimed else None,
        "task_name": successor.task_name,
        "queue": successor.queue,
        "priority": successor.priority,
        "task_id": successor.task_id,
    }


def chunk_params(chunks: Sequence[StateChunk], params: dict[str, Any]) -> tuple[bool, bool]:
    """The chunks' parameters go into ``params``; whether there are chunks, and lists to replace."""
    if not chunks:
        return False, False
    params["chunk_fields"] = [chunk.field for chunk in chunks]
    params["chunk_data"] = [chunk.data for chunk in chunks]
    replaced = [chunk.field for chunk in chunks if chunk.replace]
    if replaced:
        params["replaced_fields"] = replaced
    return True, bool(replaced)


def event_params(events: Sequence[Event], payloads: Sequence[str]) -> dict[str, Any]:
    """`_INSERT_EVENTS`'s parameters: the numbered events' columns, as arrays."""
    return {
        "event_seqs": [event.seq for event in events],
        "event_types": [event.type for event in events],
        "event_payloads": payloads,
        "event_times": [event.ts for event in events],
    }


def spliced_event(event: StepStarted) -> tuple[str, str, str]:
    """``event``'s JSON cut around its ``seq`` and ``step`` values: ``head + seq + mid + step + tail``.

    `CLAIM_FRESH` puts the two values SQL decides between the parts, so the stored payload is
    exactly what pydantic would write for the finished event (compact JSON, fields in order).
    """
    text = event.model_copy(update={"seq": 0, "step": ""}).model_dump_json()
    # Keys are never escaped, and a string value containing these would have its quotes escaped.
    seq_at, step_at = text.index('"seq":0'), text.index('"step":""')
    if not seq_at < step_at:
        raise ValueError(f"unexpected field order in {type(event).__name__}'s JSON: {text}")
    head = text[: seq_at + len('"seq":')]
    mid = text[seq_at + len('"seq":0') : step_at + len('"step":')]
    return head, mid, text[step_at + len('"step":""') :]
