"""The ReAct prompts: rendered from templates, with built-in texts when no template is set."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_ai.tools import ToolDefinition

from mamba_worker.prompts import PromptManager
from mamba_worker.workflows.react._config import ReActConfig
from mamba_worker.workflows.react._state import ScratchpadEntry

_BUILTIN_SYSTEM = (
    "Solve the task step by step. Think briefly, then call one of the tools to act, and read its result. "
    "When you know the answer, call the `{final}` tool with the complete answer as `answer`."
)
_BUILTIN_ITERATION = "Iteration {iteration} of {max_iterations}. Continue, or call `{final}` with your answer."
_BUILTIN_FORCE = "You have been reasoning without acting: call a tool now, or `{final}` if you can answer."


def render_system_prompt(
    prompts: PromptManager, config: ReActConfig, *, tools: Sequence[ToolDefinition], agent_prompt: str
) -> str:
    """The system prompt of a ReAct run: the agent's own prompt, then the ReAct instructions."""
    if config.system_prompt_template is None:
        react = _BUILTIN_SYSTEM.format(final=config.final_answer_tool_name)
    else:
        template = config.system_prompt_template
        variables = {
            "tools": [{"name": tool.name, "description": tool.description or ""} for tool in tools],
            "final_answer_tool_name": config.final_answer_tool_name,
            "reasoning_prefix": config.reasoning_prefix,
            "action_prefix": config.action_prefix,
            "observation_prefix": config.observation_prefix,
            "max_iterations": config.max_iterations,
            **template.variables,
        }
        react = prompts.render(template.name, version=template.version, **variables)
    return f"{agent_prompt.strip()}\n\n{react.strip()}" if agent_prompt.strip() else react.strip()


def render_iteration_prompt(
    prompts: PromptManager,
    config: ReActConfig,
    *,
    iteration: int,
    task: str,
    scratchpad: Sequence[ScratchpadEntry],
    force_action: bool,
) -> str:
    """The prompt that opens the next iteration (``iteration`` is 1-based: the one about to start).

    It repeats the task, because compaction may have removed the first message by now.
    """
    if config.iteration_prompt_template is None:
        text = _BUILTIN_ITERATION.format(
            iteration=iteration, max_iterations=config.max_iterations, final=config.final_answer_tool_name
        )
        if force_action:
            text += " " + _BUILTIN_FORCE.format(final=config.final_answer_tool_name)
        return f"Task: {task}\n{text}"
    template = config.iteration_prompt_template
    variables = {
        "iteration": iteration,
        "max_iterations": config.max_iterations,
        "task": task,
        "scratchpad": [entry.model_dump(mode="json") for entry in scratchpad[-6:]],
        "force_action": force_action,
        "final_answer_tool_name": config.final_answer_tool_name,
        "reasoning_prefix": config.reasoning_prefix,
        "action_prefix": config.action_prefix,
        "observation_prefix": config.observation_prefix,
        **template.variables,
    }
    return prompts.render(template.name, version=template.version, **variables).strip()
