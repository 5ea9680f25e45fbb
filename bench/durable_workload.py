"""The durable-runtime benchmark's workload: a zero-latency scripted model and a trivial tool.

Workers import this module by name (``MAMBA_RUNTIME__WORKFLOW_MODULES='["bench.durable_workload"]'``),
which registers the tool ``bench_lookup``. Runs use the stock ``react`` workflow, so every step
goes through the real path: claim, the recording model (``model_calls`` ledger), the tool ledger,
``commit_step``, the outbox and the successor's Celery message.

The workload mirrors the anchors' (``bench/anchors/common.py``): ``K`` iterations of think → act →
observe, so ``3 * K`` steps per run. Each ``think`` returns about 1 KB (560 characters of text and
one tool call), each tool result is a 1,024-character string, and the history grows by about 2 KB
per iteration. The last ``think`` calls ``final_answer``, so the run ends after exactly ``3 * K``
steps (the last ``observe`` finishes it).

The model is resolved by name in every process. `Runtime` has no hook to register a model
object, so `BenchRuntime` overrides `Runtime.model` for the one name `SCRIPTED_MODEL`; the
benchmark's Celery app (``bench.durable_app``) installs it before Celery loads the tasks.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from mamba_worker.durable import Runtime, register_tool

SCRIPTED_MODEL = "bench:scripted"
"""The model name runs of this benchmark use."""
TOOL = "bench_lookup"
"""The trivial tool every ``act`` step calls."""
K = int(os.environ.get("MAMBA_BENCH_K", "10"))
"""Iterations per run (``3 * K`` steps); workers read it from the environment the driver sets."""

_FILLER = ("The quick brown fox jumps over the lazy dog while the agent considers its next tool call. ") * 40


@register_tool(name=TOOL, idempotent=True)
def bench_lookup(query: str, page: int) -> str:
    """Look ``query`` up (returns a 1,024-character string, as the anchors' ``fake_tool``)."""
    head = f"result for {TOOL}({json.dumps({'query': query, 'page': page})}): "
    return (head + _FILLER)[:1024]


async def _script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Think: a tool call on the first ``K - 1`` requests of a run, ``final_answer`` on the K-th.

    Async, as a real model client is (a sync function would run in a worker thread).
    """
    i = sum(1 for message in messages if isinstance(message, ModelResponse))
    text = TextPart(content=_FILLER[:560])
    usage = RequestUsage(input_tokens=1000 + 200 * i, output_tokens=150)
    if i < K - 1:
        call = ToolCallPart(tool_name=TOOL, args={"query": f"q{i}", "page": i}, tool_call_id=f"call-{i}")
    else:
        call = ToolCallPart(tool_name="final_answer", args={"answer": f"done after {i + 1}"}, tool_call_id=f"call-{i}")
    return ModelResponse(parts=[text, call], usage=usage, model_name=SCRIPTED_MODEL, finish_reason="tool_call")


SCRIPTED = FunctionModel(_script, model_name=SCRIPTED_MODEL)
"""The zero-latency model: one instance per process, as `Runtime.model` would cache it."""


class BenchRuntime(Runtime):
    """`Runtime` that answers `SCRIPTED_MODEL` with `SCRIPTED`; every other name as usual."""

    def model(self, name: str | None) -> Model:
        if name == SCRIPTED_MODEL:
            return SCRIPTED
        return super().model(name)


def workflow_alone_runner() -> Callable[[], float]:
    """One run of this workload's stock ReAct workflow in-process, without durability, per call: its ms/step.

    No SQL, no broker, no Celery: `ReActWorkflow.run` with `SCRIPTED` and `bench_lookup`. What the
    workload itself costs; a durable step's overhead is what it adds.
    """
    from mamba_worker.agent import Agent
    from mamba_worker.workflows import ReActConfig, ReActWorkflow

    agent = Agent(SCRIPTED, tools=[bench_lookup])

    async def one() -> float:
        workflow = ReActWorkflow(agent, config=ReActConfig(max_iterations=K + 5))
        start = time.perf_counter()
        result = await workflow.run("Look things up, then answer.")
        return (time.perf_counter() - start) * 1000 / result.state.current_step

    return lambda: asyncio.run(one())


def workflow_alone_ms_per_step(*, runs: int, warmup: int = 3) -> float:
    """`workflow_alone_runner`'s median over ``runs`` runs, after ``warmup``."""
    run = workflow_alone_runner()
    per_step = [run() for _ in range(warmup + runs)][warmup:]
    return statistics.median(per_step)
