"""Recording model responses and tool results, so a re-run step repeats neither.

- `RecordingModel` (a pydantic-ai `WrapperModel`) looks each request up in the ``model_calls``
  ledger by (run, step, call index): a response recorded by an earlier attempt of the step is
  reused instead of paying for a new one (and the run's output then equals an uninterrupted
  run's). A new response is recorded, with its usage and cost, in its own transaction as soon as
  it arrives, so a crash after it loses neither the tokens nor the money spent.
- `ToolLedger` wraps each tool call: ``started`` is committed BEFORE the tool runs and
  ``finished`` right after. A re-run finds ``finished`` calls and reuses their results; a call left
  ``started`` by a crash is re-run if the tool is idempotent, and is "in doubt" otherwise. An
  idempotent tool's call has no ``started`` row of its own (it may simply run again), and when
  nothing else is running its ``finished`` row waits for the step's commit, which writes it in
  the same transaction: a crash before the commit loses only what running the call again gives
  back. It is written at once, instead, as soon as another call starts (which may take long), and
  by the executor when the step does not commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse, ToolReturnPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from mamba_client.schemas import ToolCallStatus, Usage
from mamba_worker.config import InDoubtPolicy
from mamba_worker.durable._faults import FaultPoint, fault
from mamba_worker.durable.errors import StepInDoubtError
from mamba_worker.durable.store import (
    ModelCallRecord,
    RunStore,
    ToolCallRecord,
    ToolCallResult,
    ToolCallStart,
    mark_tool_call_in_doubt_txn,
)
from mamba_worker.tokens import CostEstimator
from mamba_worker.workflows import ToolOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ToolCallInfo:
    """The durable identity of the tool call being executed (see `current_tool_call`)."""

    run_id: str
    seq: int
    tool_call_id: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """``run_id:seq:tool_call_id``: the same on every re-run of the call, unique otherwise.

        Hand it to external APIs that deduplicate requests (payments, emails, tickets).
        """
        return f"{self.run_id}:{self.seq}:{self.tool_call_id}"


_current_call: ContextVar[ToolCallInfo | None] = ContextVar("mamba_current_tool_call", default=None)


def current_tool_call() -> ToolCallInfo | None:
    """Inside a tool run by the durable runtime: the call's identity and idempotency key; else ``None``."""
    return _current_call.get()


# The ledger stores a message as pydantic-ai's message list of one (what `ModelMessagesTypeAdapter`
# reads back). It is written through the message's own type: the list's union serializer picks the
# member per message and took three times as long for a response (the same bytes).
_RESPONSE = TypeAdapter(ModelResponse)
_REQUEST = TypeAdapter(ModelRequest)


def dump_response(response: ModelResponse) -> str:
    """A model response as JSON text: the message list of one that pydantic-ai's type adapter reads."""
    return f"[{_RESPONSE.dump_json(response).decode()}]"


def load_response(data: str) -> ModelResponse:
    """The inverse of `dump_response`."""
    message = ModelMessagesTypeAdapter.validate_json(data)[0]
    assert isinstance(message, ModelResponse)
    return message


class RecordingModel(WrapperModel):
    """Records each response of one step attempt, and replays responses an earlier attempt recorded.

    Args:
        wrapped: The real model.
        store: The ledger.
        run_id: The run.
        seq: The step.
        attempt: This attempt.
        costs: Prices the usage.
        on_response: Called with each response and whether it was replayed.
        before_request: Called before each request is made (not before a replay); what it raises
            stops the request.
    """

    def __init__(
        self,
        wrapped: Model,
        *,
        store: RunStore,
        run_id: str,
        seq: int,
        attempt: int,
        costs: CostEstimator,
        on_response: Callable[[ModelResponse, Usage, bool], None],
        before_request: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._before_request = before_request
        self._store = store
        self._run_id = run_id
        self._seq = seq
        self._attempt = attempt
        self._costs = costs
        self._on_response = on_response
        self._call_index = 0
        # Responses earlier attempts of this step recorded, by call index (newest attempt wins).
        self._recorded: dict[int, str] = {}
        if attempt > 1:
            for row in store.get_model_calls(run_id, seq):
                if row.response is not None and row.attempt < attempt:
                    self._recorded[row.call_index] = row.response

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Replay the recorded response for this call index, or make the request and record it."""
        index = self._call_index
        self._call_index += 1
        recorded = self._recorded.get(index)
        if recorded is not None:
            response = load_response(recorded)
            self._on_response(response, Usage(), True)
            return response
        if self._before_request is not None:
            self._before_request()
        response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        usage = self._usage(response)
        self._store.record_model_call(
            ModelCallRecord(
                run_id=self._run_id,
                seq=self._seq,
                attempt=self._attempt,
                call_index=index,
                usage=usage,
                model_name=response.model_name or self.wrapped.model_name,
                response=dump_response(response),
            )
        )
        self._on_response(response, usage, False)
        return response

    def _usage(self, response: ModelResponse) -> Usage:
        used = response.usage
        model = response.model_name or self.wrapped.model_name
        cost = self._costs.estimate(input_tokens=used.input_tokens, output_tokens=used.output_tokens, model=model)
        return Usage(
            input_tokens=used.input_tokens,
            output_tokens=used.output_tokens,
            cache_read_tokens=used.cache_read_tokens,
            cache_write_tokens=used.cache_write_tokens,
            requests=1,
            cost_usd=cost,
        )


ToolExecutor = Callable[[], Any]


class ToolLedger:
    """Wraps tool execution in the ``tool_calls`` ledger of one step attempt.

    Args:
        store: The ledger.
        run_id: The run.
        seq: The step.
        attempt: This attempt.
        before_call: Called before anything of a call is done (its ledger rows, the call itself);
            what it raises stops the call.
    """

    def __init__(
        self, store: RunStore, *, run_id: str, seq: int, attempt: int, before_call: Callable[[], object] | None = None
    ) -> None:
        self._store = store
        self._before_call = before_call
        self._run_id = run_id
        self._seq = seq
        self._attempt = attempt
        self._previous = {row.tool_call_id: row for row in store.get_tool_calls(run_id, seq)} if attempt > 1 else {}
        self._deferred: list[ToolCallResult] = []
        self._running = 0

    @property
    def deferred(self) -> Sequence[ToolCallResult]:
        """Finished idempotent calls not written yet: the step's commit writes them."""
        return tuple(self._deferred)

    def flush(self) -> None:
        """Write the deferred calls now, each in a transaction of its own."""
        results, self._deferred = self._deferred, []
        self._store.record_tool_results(results)

    async def run(
        self,
        *,
        tool_call_id: str,
        tool_name: str,
        idempotent: bool,
        in_doubt: InDoubtPolicy = "wait",
        args_json: str,
        execute: Callable[[], Any],
    ) -> ToolOutcome:
        """Run one call through the ledger; ``execute`` is awaited to actually call the tool.

        ``in_doubt`` is the tool's policy for a non-idempotent call a crash left ``started``:
        ``wait`` or ``fail`` raise `StepInDoubtError` (the executor then stops the run for a
        person, or fails it), ``rerun`` runs the call again.
        """
        if self._before_call is not None:
            self._before_call()
        previous = self._previous.get(tool_call_id)
        if previous is not None and previous.status == ToolCallStatus.FINISHED and previous.result is not None:
            part = _load_part(previous.result)
            return ToolOutcome(part=part, reused=True, is_error=part.outcome != "success")
        # A call already recorded "started" by THIS attempt cannot be a crash's leftover: a person
        # answered "rerun" for it (`RunService.answer` restarts it for the step's next attempt).
        approved = (
            previous is not None and previous.status == ToolCallStatus.STARTED and previous.attempt == self._attempt
        )
        if previous is not None and not approved and not idempotent and in_doubt != "rerun":
            with self._store.session() as session, session.begin():
                mark_tool_call_in_doubt_txn(session, self._run_id, self._seq, tool_call_id)
            raise StepInDoubtError(
                f"tool call {tool_call_id!r} ({tool_name}) of run {self._run_id!r} step {self._seq} was started "
                "before a crash and may have run; it is not idempotent, so it is not run again without a decision",
                run_id=self._run_id,
                seq=self._seq,
                tool_call_id=tool_call_id,
                tool_name=tool_name,
                policy=in_doubt,
            )

        call = ToolCallRecord(
            run_id=self._run_id,
            seq=self._seq,
            tool_call_id=tool_call_id,
            tool_name=tool_name,
            idempotent=idempotent,
            attempt=self._attempt,
            args=args_json,
        )
        start: ToolCallStart | None = "insert" if previous is None else None if approved else "restart"
        # This call may run for long: what finished before it must not wait for the commit.
        self.flush()
        if not idempotent and start is not None:
            # Only a call that must not run twice needs "started" durable BEFORE it runs; an
            # idempotent one may simply run again after a crash, so its start is written with its
            # result (one transaction per call instead of two).
            self._store.record_tool_call_started(call, start=start)
        # Committed: from here a crash leaves the call "started", which is what a re-run must see.
        fault(FaultPoint.AFTER_TOOL_STARTED)
        token = _current_call.set(
            ToolCallInfo(run_id=self._run_id, seq=self._seq, tool_call_id=tool_call_id, attempt=self._attempt)
        )
        self._running += 1
        try:
            outcome: ToolOutcome = await execute()
        finally:
            self._running -= 1
            _current_call.reset(token)
        fault(FaultPoint.AFTER_TOOL_EXECUTED)
        # A failure the model is told about is still a finished call: its result (the error text
        # the model saw) is what a re-run must replay.
        done = ToolCallResult(call=call, result=_dump_part(outcome.part), start=start if idempotent else None)
        if idempotent and not self._running:
            self._deferred.append(done)  # see the module docstring
        else:
            # Not idempotent: "in doubt" after a crash, which a person must then answer. Or calls
            # still running beside it, for as long as they take.
            self._store.record_tool_results([done])
        return outcome


UNKNOWN_OUTCOME = (
    "The outcome of this call is unknown: it was started before a crash and may or may not have taken "
    "effect. A person chose not to run it again; check its effect before relying on it."
)
"""What the model is told about an in-doubt call a person answered with ``skip``."""


def unknown_outcome_result(*, tool_name: str, tool_call_id: str) -> str:
    """The ledger result (JSON text) of an in-doubt call answered ``skip``: `UNKNOWN_OUTCOME`, marked interrupted."""
    part = ToolReturnPart(
        tool_name=tool_name, content=UNKNOWN_OUTCOME, tool_call_id=tool_call_id, outcome="interrupted"
    )
    return _dump_part(part)


def _dump_part(part: ToolReturnPart) -> str:
    return f"[{_REQUEST.dump_json(ModelRequest(parts=[part])).decode()}]"


def _load_part(data: str) -> ToolReturnPart:
    message = ModelMessagesTypeAdapter.validate_json(data)[0]
    assert isinstance(message, ModelRequest)
    part = message.parts[0]
    assert isinstance(part, ToolReturnPart)
    return part
