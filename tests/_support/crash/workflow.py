"""What crash-test workers import (``MAMBA_RUNTIME__WORKFLOW_MODULES=["tests._support.crash.workflow"]``).

It registers, by name:

- the model ``crash-scripted``: a deterministic pydantic-ai `FunctionModel`. Its first request
  calls ``append_note`` then ``lookup`` (in that order); its second answers through
  ``final_answer`` with both tool results, so the output shows the whole run. Each request first
  passes the gate ``think-<n>``;
- the tool ``lookup`` (idempotent): passes the gate ``act-lookup`` and returns a fixed value;
- the tool ``append_note`` (NOT idempotent): passes ``act-note`` and appends a line to
  ``append_note.log`` in the gate directory, so running it twice shows.

It also writes ``ready.<pid>`` into the gate directory when a Celery worker of this process is
ready, and ``done.<task_id>`` (holding the step's outcome) after each task, so tests wait for
workers and deliveries without reading logs or sleeping.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import task_postrun, worker_ready
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.durable import register_model, register_tool
from tests._support.crash.gates import append_line, gate_dir, pass_gate

MODEL_NAME = "crash-scripted"
TOOLS = ["append_note", "lookup"]
NOTE_LOG = "append_note.log"
TASK = "Write the note, look the key up, then answer."


@register_tool(idempotent=True)
async def lookup(key: str) -> str:
    """Look ``key`` up (idempotent: a re-run returns the same)."""
    await pass_gate("act-lookup")
    return f"value-of-{key}"


@register_tool(idempotent=False)
async def append_note(text: str) -> str:
    """Append ``text`` to the note log (not idempotent: every run appends a line)."""
    await pass_gate("act-note")
    append_line(gate_dir() / NOTE_LOG, f"{os.getpid()} {text}")
    return f"noted {text!r}"


async def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The scripted model: tools first, then the final answer built from their results."""
    think = 1 + sum(isinstance(message, ModelResponse) for message in messages)
    await pass_gate(f"think-{think}")
    if think == 1:
        return ModelResponse(
            parts=[
                ToolCallPart("append_note", {"text": "hello"}, tool_call_id="call-note"),
                ToolCallPart("lookup", {"key": "alpha"}, tool_call_id="call-lookup"),
            ]
        )
    returns = {
        part.tool_name: part.model_response_str()
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }
    answer = f"note: {returns.get('append_note')}; lookup: {returns.get('lookup')}"
    return ModelResponse(parts=[ToolCallPart("final_answer", {"answer": answer}, tool_call_id=f"call-final-{think}")])


register_model(MODEL_NAME, lambda: FunctionModel(script, model_name=MODEL_NAME))


@worker_ready.connect(weak=False)
def _announce_ready(**_: Any) -> None:
    if os.environ.get("CRASHTEST_DIR"):
        (gate_dir() / f"ready.{os.getpid()}").touch()


@task_postrun.connect(weak=False)
def _announce_done(task_id: str | None = None, retval: Any = None, **_: Any) -> None:
    if os.environ.get("CRASHTEST_DIR") and task_id:
        append_line(gate_dir() / f"done.{task_id}", str(retval))
