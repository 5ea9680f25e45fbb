"""Scripted models, tools and a custom workflow for the durable runtime's tests.

Importable by worker subprocesses (``MAMBA_RUNTIME__WORKFLOW_MODULES=tests._support.durable_workflows``):
importing it registers the tools and the workflow in the default registry.

- `Script`: a `FunctionModel` that plays a list of moves in order (a response, an exception to
  raise, or a function of the messages) and counts its calls, so a test can assert that a
  replayed step did not call the model again.
- The ``dt_*`` tools count their executions in `CALLS`, can be armed to "crash" (`arm_crash`:
  raise `SimulatedCrash`, a `BaseException` no layer catches, which leaves SQL exactly as a
  ``kill -9`` of the worker would), and record what they saw (`SEEN`).
- `CountWorkflow` (``dt_count``): a custom `StepWorkflow` counting to a target.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from mamba_worker.durable import current_tool_call, register_model, register_tool, register_workflow
from mamba_worker.workflows import Finish, Next, StepContext, StepResult, StepWorkflow, step
from tests._support.wait import async_wait_until


class SimulatedCrash(BaseException):
    """Stands for the worker process dying here: no ``except Exception`` on the step path catches it."""


Move = ModelResponse | BaseException | Callable[[list[ModelMessage]], ModelResponse | Awaitable[ModelResponse]]


class Script:
    """A scripted model: each request plays the next move; ``calls`` counts the requests.

    Args:
        moves: In order: a `ModelResponse` to return, an exception to raise, or a function (sync or
            async) of the messages returning a response. After the last move the last one repeats.
        model_name: The name the responses carry.
    """

    def __init__(self, moves: Sequence[Move], *, model_name: str = "scripted") -> None:
        self.moves = list(moves)
        self.calls = 0
        self.infos: list[AgentInfo] = []
        """What each request was made with (tools, model settings), in order."""
        self.model = FunctionModel(self._respond, model_name=model_name)
        self._lock = threading.Lock()

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        with self._lock:
            index = min(self.calls, len(self.moves) - 1)
            self.calls += 1
            self.infos.append(info)
        move = self.moves[index]
        if isinstance(move, BaseException):
            raise move
        if isinstance(move, ModelResponse):
            return move
        response = move(messages)
        return await response if inspect.isawaitable(response) else response


class Gate:
    """A move that blocks the model call until the test opens the gate (from any thread).

    ``entered`` is set once the model call is waiting, so the test knows the step is mid-call.
    """

    def __init__(self, *, timeout: float = 15.0) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        self._timeout = timeout

    def open(self) -> None:
        """Let the waiting call (and every later one) go on."""
        self._open.set()

    def then(self, response: ModelResponse) -> Callable[[list[ModelMessage]], Awaitable[ModelResponse]]:
        """A move that waits for the gate, then returns ``response``."""

        async def move(messages: list[ModelMessage]) -> ModelResponse:
            self.entered.set()

            async def is_open() -> bool:
                return self._open.is_set()

            await async_wait_until(is_open, timeout=self._timeout, interval=0.01, what="the test to open the gate")
            return response

        return move


def usage(input_tokens: int = 10, output_tokens: int = 5) -> RequestUsage:
    """Usage for a scripted response."""
    return RequestUsage(input_tokens=input_tokens, output_tokens=output_tokens)


def call(tool: str, args: dict[str, Any], *, call_id: str, tokens: tuple[int, int] = (10, 5)) -> ModelResponse:
    """A response asking for one tool call."""
    return calls([(tool, args, call_id)], tokens=tokens)


def calls(items: Sequence[tuple[str, dict[str, Any], str]], *, tokens: tuple[int, int] = (10, 5)) -> ModelResponse:
    """A response asking for several tool calls ``(tool, args, call_id)``."""
    return ModelResponse(
        parts=[ToolCallPart(tool_name=tool, args=args, tool_call_id=call_id) for tool, args, call_id in items],
        usage=usage(*tokens),
        model_name="scripted",
    )


def answer(text: str, *, call_id: str = "final", tokens: tuple[int, int] = (10, 5)) -> ModelResponse:
    """A response giving ReAct's final answer."""
    return call("final_answer", {"answer": text}, call_id=call_id, tokens=tokens)


def answer_recording(asked: list[list[ModelMessage]], text: str) -> Callable[[list[ModelMessage]], ModelResponse]:
    """A `Script` move that keeps the messages the model was asked with (in ``asked``), then answers ``text``."""

    def move(messages: list[ModelMessage]) -> ModelResponse:
        asked.append(list(messages))
        return answer(text)

    return move


def say(text: str, *, tokens: tuple[int, int] = (10, 5)) -> ModelResponse:
    """A plain text response (no tool call)."""
    return ModelResponse(parts=[TextPart(content=text)], usage=usage(*tokens), model_name="scripted")


# -- tools --------------------------------------------------------------------------------------

CALLS: Counter[str] = Counter()
"""Executions per tool (a crashed execution counts: the tool started)."""
SEEN: dict[str, list[Any]] = {}
"""What tools observed (idempotency keys, event loop ids), per tool."""
_CRASHES: Counter[str] = Counter()
_lock = threading.Lock()


def reset() -> None:
    """Forget counts, observations and armed crashes (between tests)."""
    with _lock:
        CALLS.clear()
        SEEN.clear()
        _CRASHES.clear()


def arm_crash(tool: str, *, times: int = 1) -> None:
    """Make the next ``times`` executions of ``tool`` raise `SimulatedCrash` (after counting them)."""
    with _lock:
        _CRASHES[tool] = times


def _enter(tool: str, seen: Any = None) -> None:
    with _lock:
        CALLS[tool] += 1
        if seen is not None:
            SEEN.setdefault(tool, []).append(seen)
        crash = _CRASHES[tool] > 0
        if crash:
            _CRASHES[tool] -= 1
    if crash:
        raise SimulatedCrash(f"{tool} crashed")


def _key() -> str | None:
    info = current_tool_call()
    return None if info is None else info.idempotency_key


@register_tool(idempotent=True)
def dt_add(a: int, b: int) -> int:
    """Add two numbers (idempotent; a sync tool)."""
    _enter("dt_add", _key())
    return a + b


@register_tool(idempotent=False)
async def dt_send(to: str) -> str:
    """Send a message to ``to`` (NOT idempotent; an async tool)."""
    _enter("dt_send", _key())
    return f"sent to {to}"


@register_tool(idempotent=False, in_doubt="rerun")
async def dt_notify(to: str) -> str:
    """Notify ``to`` (NOT idempotent, but its own in-doubt policy is to run it again)."""
    _enter("dt_notify", _key())
    return f"notified {to}"


@register_tool(idempotent=False, in_doubt="wait")
async def dt_charge(amount: int) -> str:
    """Charge ``amount`` (NOT idempotent; its own in-doubt policy waits for a person, whatever the runtime's)."""
    _enter("dt_charge", _key())
    return f"charged {amount}"


@register_tool(idempotent=True)
async def dt_loop() -> str:
    """Report the running event loop's id (to check loops are reused across tasks)."""
    _enter("dt_loop", id(asyncio.get_running_loop()))
    return "ok"


# -- a custom workflow ------------------------------------------------------------------------


class CountState(BaseModel):
    """`CountWorkflow`'s state."""

    target: int
    count: int = 0


@register_workflow
class CountWorkflow(StepWorkflow[None, int, CountState]):
    """Counts to the number it was given: ``start`` → ``count`` (× target) → ``done``."""

    state_type: ClassVar[type[BaseModel]] = CountState
    initial_step: ClassVar[str] = "start"

    @property
    def name(self) -> str:
        """``dt_count``."""
        return "dt_count"

    def initial_context(self, prompt: str) -> CountState:
        """The target is the prompt, as a number."""
        return CountState(target=int(prompt))

    @step
    async def start(self, state: CountState, ctx: StepContext) -> StepResult:
        """Begin counting."""
        return Next(step="count")

    @step
    async def count(self, state: CountState, ctx: StepContext) -> StepResult:
        """One more."""
        state.count += 1
        return Next(step="count") if state.count < state.target else Next(step="done")

    @step
    async def done(self, state: CountState, ctx: StepContext) -> StepResult:
        """Finish with the count."""
        return Finish(output=state.count)


class AskState(BaseModel):
    """`SwallowingWorkflow`'s state."""

    asked: int = 0


@register_workflow
class SwallowingWorkflow(StepWorkflow[None, int, AskState]):
    """Asks the model twice; the second ask swallows any error (``first`` → ``second`` → ``done``).

    What a careless workflow does: an error of the durable runtime's must still end the step.
    The swallowed errors' types are kept in ``SEEN["dt_swallow"]``.
    """

    state_type: ClassVar[type[BaseModel]] = AskState
    initial_step: ClassVar[str] = "first"

    @property
    def name(self) -> str:
        """``dt_swallow``."""
        return "dt_swallow"

    def initial_context(self, prompt: str) -> AskState:
        """Nothing asked yet."""
        return AskState()

    @step
    async def first(self, state: AskState, ctx: StepContext) -> StepResult:
        """Ask once."""
        await ctx.request([ModelRequest.user_text_prompt("first")])
        state.asked += 1
        return Next(step="second")

    @step
    async def second(self, state: AskState, ctx: StepContext) -> StepResult:
        """Ask again, whatever happens."""
        try:
            await ctx.request([ModelRequest.user_text_prompt("second")])
            state.asked += 1
        except Exception as error:
            with _lock:
                SEEN.setdefault("dt_swallow", []).append(type(error).__name__)
        return Next(step="done")

    @step
    async def done(self, state: AskState, ctx: StepContext) -> StepResult:
        """Finish with how many asks were answered."""
        return Finish(output=state.asked)


# A scripted model worker subprocesses can name: answers every question with "4".
register_model("dt_answer_four", lambda: FunctionModel(lambda messages, info: answer("4"), model_name="scripted"))
