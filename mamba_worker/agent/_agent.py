"""`Agent`: the spec's agent, a thin stateful wrapper over a pydantic-ai `Agent`.

pydantic-ai runs the loop (model requests, tool calls, output validation). This class adds what a
long conversation needs: the history kept across runs (with compaction), usage and cost tracking,
a system prompt that may come from a template and be switched at run time, and Mamba's settings,
retries and error types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, NoReturn

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import Tool
from pydantic_ai.toolsets import AbstractToolset
from typing_extensions import TypeVar

from mamba_worker.agent._config import AgentConfig
from mamba_worker.agent._event_loop import run_blocking
from mamba_worker.agent._model import ResilientModel
from mamba_worker.backends import create_model, translate_model_error
from mamba_worker.config import AgentSettings, TemplateConfig
from mamba_worker.context import CompactionResult, ContextManager, ContextState
from mamba_worker.prompts import PromptManager
from mamba_worker.tokens import CostBreakdown, CostEstimator, TokenCounter, UsageRecord, UsageSummary, UsageTracker

DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=str)


class Agent(Generic[DepsT, OutputT]):
    """An agent that keeps its conversation, counts its tokens and knows its cost.

    Example:
        ```python
        agent = Agent("gpt-4o", settings=AgentSettings())
        result = agent.run_sync("What is 2 + 2?")
        print(result.output, agent.get_usage().total_tokens, agent.get_cost())
        ```

    Args:
        model: A model name (``"gpt-4o"``, ``"openai:gpt-4o"``, ``"ollama:llama3.2"``, ``"offline"``), a
            pydantic-ai `Model`, or ``None`` to use ``settings.model_backend.model``.
        settings: Mamba settings; ``None`` loads them from the environment and files.
        tools: Functions or pydantic-ai `Tool`s the model may call.
        toolsets: pydantic-ai toolsets (MCP servers, ...).
        system_prompt: A string, or a `TemplateConfig` rendered with the prompt manager.
        config: Per-agent options.
        output_type: The run's output type, as in pydantic-ai.
        deps_type: The type of the dependencies passed to tools, as in pydantic-ai.
        prompt_manager: Renders template system prompts; default: one built from ``settings.prompts``.
    """

    def __init__(
        self,
        model: str | Model | None = None,
        *,
        settings: AgentSettings | None = None,
        tools: Sequence[Tool[DepsT] | Callable[..., Any]] = (),
        toolsets: Sequence[AbstractToolset[DepsT]] | None = None,
        system_prompt: str | TemplateConfig | None = None,
        config: AgentConfig | None = None,
        output_type: Any = str,
        deps_type: type[DepsT] | None = None,
        prompt_manager: PromptManager | None = None,
    ) -> None:
        self.settings = settings if settings is not None else AgentSettings()
        self.config = config if config is not None else AgentConfig()
        self._prompts = prompt_manager if prompt_manager is not None else PromptManager(self.settings.prompts)
        self._system_prompt: str | TemplateConfig = (
            system_prompt if system_prompt is not None else self.config.system_prompt
        )
        self._rendered_system_prompt = self._render(self._system_prompt)

        base_model = model if isinstance(model, Model) else create_model(model, settings=self.settings.model_backend)
        self.model: Model = ResilientModel(base_model, retry=self.settings.retry)
        self.tools: list[Tool[DepsT] | Callable[..., Any]] = list(tools)
        self.toolsets: list[AbstractToolset[DepsT]] = list(toolsets or [])

        tokenizer = self.config.tokenizer or self.settings.tokenizer
        self._counter = TokenCounter(tokenizer.encoding, config=tokenizer)
        self._usage = UsageTracker()
        self._cost = CostEstimator()
        self._context = ContextManager(
            self.config.context or self.settings.context, token_counter=self._counter, model=self.model
        )
        self._agent: PydanticAgent[Any, Any] = PydanticAgent(
            self.model,
            output_type=output_type,
            instructions=self._instructions,
            deps_type=deps_type if deps_type is not None else type(None),
            tools=self.tools,
            toolsets=self.toolsets,
            retries=self.config.max_retries,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Agent[DepsT, OutputT]:
        """Open the model's HTTP client and the toolsets (MCP servers) once for many runs."""
        await self._agent.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close what `__aenter__` opened."""
        await self._agent.__aexit__(*exc_info)

    # -- running ---------------------------------------------------------------------------

    async def run(self, prompt: str, *, deps: DepsT | None = None, **kwargs: Any) -> AgentRunResult[OutputT]:
        """Run the agent on ``prompt``, continuing the conversation so far.

        Extra keyword arguments go to pydantic-ai's ``Agent.run`` (``usage_limits``,
        ``model_settings``, ...).
        """
        try:
            result = await self._agent.run(prompt, deps=deps, message_history=self._history(), **kwargs)
        except Exception as error:
            _raise_translated(error, self.model)
        await self._after_run(result.new_messages())
        return result

    def run_sync(self, prompt: str, *, deps: DepsT | None = None, **kwargs: Any) -> AgentRunResult[OutputT]:
        """Blocking twin of `run`: the same async core, on this thread's reusable event loop."""
        return run_blocking(self.run(prompt, deps=deps, **kwargs))

    @asynccontextmanager
    async def run_stream(
        self, prompt: str, *, deps: DepsT | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamedRunResult[Any, OutputT]]:
        """Stream a run, as pydantic-ai's ``Agent.run_stream``; the history is updated when it ends.

        Example:
            ```python
            async with agent.run_stream("Tell me a story") as stream:
                async for chunk in stream.stream_text(delta=True):
                    print(chunk, end="")
            ```
        """
        try:
            async with self._agent.run_stream(prompt, deps=deps, message_history=self._history(), **kwargs) as stream:
                yield stream
                messages = stream.new_messages()
        except Exception as error:
            _raise_translated(error, self.model)
        await self._after_run(messages)

    # -- context ---------------------------------------------------------------------------

    def get_messages(self) -> list[ModelMessage]:
        """All messages of the conversation so far (after any compaction)."""
        return self._context.get_messages()

    def get_context_state(self) -> ContextState:
        """Message count, token count and compaction history of the conversation."""
        return self._context.get_context_state()

    def should_compact(self) -> bool:
        """Whether the history has reached the compaction threshold."""
        return self._context.should_compact()

    async def compact(self) -> CompactionResult:
        """Compact the history now with the configured strategy."""
        return await self._context.compact()

    def clear_context(self) -> None:
        """Forget the conversation (usage and cost tracking are kept; see `reset_tracking`)."""
        self._context.clear()

    # -- system prompt ---------------------------------------------------------------------

    def set_system_prompt(self, prompt: str | TemplateConfig) -> None:
        """Replace the system prompt; it applies from the next model request on."""
        self._rendered_system_prompt = self._render(prompt)
        self._system_prompt = prompt

    def get_system_prompt(self) -> str:
        """The current system prompt, rendered."""
        return self._rendered_system_prompt

    # -- usage and cost --------------------------------------------------------------------

    def get_usage(self) -> UsageSummary:
        """Tokens and requests used since creation or the last `reset_tracking`."""
        return self._usage.get_summary()

    def get_cost(self) -> float:
        """Estimated cost in US dollars (zero for local models)."""
        return self.get_cost_breakdown().total_cost

    def get_cost_breakdown(self) -> CostBreakdown:
        """Estimated cost split into prompt and completion cost."""
        return self._cost.estimate_summary(self._usage.get_summary())

    def get_usage_history(self) -> list[UsageRecord]:
        """One record per model request, with its timestamp and model."""
        return self._usage.get_history()

    def reset_tracking(self) -> None:
        """Start usage and cost tracking afresh."""
        self._usage.reset()

    def get_token_count(self, text: str | None = None) -> int:
        """Tokens in ``text``, or in the whole conversation when ``text`` is omitted."""
        return self._counter.count(text) if text is not None else self._context.get_context_state().token_count

    @property
    def token_counter(self) -> TokenCounter:
        """The counter this agent uses (shared with its context manager)."""
        return self._counter

    @property
    def usage_tracker(self) -> UsageTracker:
        """The tracker that records every model request of this agent."""
        return self._usage

    @property
    def cost_estimator(self) -> CostEstimator:
        """The estimator behind `get_cost`."""
        return self._cost

    @property
    def prompt_manager(self) -> PromptManager:
        """The prompt manager that renders template system prompts."""
        return self._prompts

    @property
    def context_manager(self) -> ContextManager:
        """The context manager that holds the conversation."""
        return self._context

    # -- internals -------------------------------------------------------------------------

    def _instructions(self) -> str:
        # A callable, so set_system_prompt takes effect on the next request of a conversation.
        return self._rendered_system_prompt

    def _render(self, prompt: str | TemplateConfig) -> str:
        return prompt if isinstance(prompt, str) else self._prompts.render_config(prompt)

    def _history(self) -> list[ModelMessage] | None:
        return self._context.get_messages() if self.config.track_context else None

    def _record(self, new_messages: Sequence[ModelMessage]) -> None:
        for message in new_messages:
            if isinstance(message, ModelResponse):
                self._usage.record_run_usage(message.usage, model=message.model_name or self.model.model_name)
        if self.config.track_context:
            self._context.add_messages(list(new_messages))

    def _needs_compaction(self) -> bool:
        return self.config.track_context and self.config.auto_compact and self._context.should_compact()

    async def _after_run(self, new_messages: Sequence[ModelMessage]) -> None:
        self._record(new_messages)
        if self._needs_compaction():
            await self._context.compact()


def _raise_translated(error: Exception, model: Model) -> NoReturn:
    """Re-raise ``error`` as a `MambaError` when it is a model failure, else unchanged."""
    translated = translate_model_error(error, model=model.model_name)
    if translated is None or translated is error:
        raise error
    raise translated from error
