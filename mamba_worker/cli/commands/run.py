"""``mamba run``: run one agent job on this machine and print the answer, usage and cost."""

from __future__ import annotations

import json

import click
from rich.panel import Panel

from mamba_worker.agent import Agent
from mamba_worker.cli._console import stderr, stdout
from mamba_worker.config import AgentSettings
from mamba_worker.workflows import ReActConfig, ReActHooks, ReActWorkflow

OFFLINE = "offline"
SWITCH_HINT = (
    "No model is configured, so Mamba uses its built-in offline model (no key, no server). "
    "To use a real model set MAMBA_MODEL_BACKEND__MODEL, e.g. openai:gpt-4o (with OPENAI_API_KEY), "
    "anthropic:claude-sonnet-4-5 (with ANTHROPIC_API_KEY), or ollama:llama3.2 / vllm:<model> / "
    "lmstudio:<model> for a local server."
)


@click.command(name="run")
@click.argument("prompt")
@click.option("--model", "model_name", default=None, help="Model to use (overrides MAMBA_MODEL_BACKEND__MODEL).")
@click.option("--max-iterations", default=10, show_default=True, help="ReAct iterations before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def run(prompt: str, model_name: str | None, max_iterations: int, as_json: bool) -> None:
    """Run PROMPT as a ReAct job and print the answer, usage and cost."""
    settings = AgentSettings()
    model = model_name or settings.model_backend.model
    if model is None:
        model = OFFLINE
        stderr.print(f"[yellow]{SWITCH_HINT}[/yellow]")
    agent: Agent[None, str] = Agent(model, settings=settings)
    hooks = ReActHooks() if as_json else _progress_hooks()
    workflow = ReActWorkflow(agent, config=ReActConfig(max_iterations=max_iterations), hooks=hooks)
    result = workflow.run_sync(prompt)
    usage = agent.get_usage()
    cost = agent.get_cost_breakdown()
    if as_json:
        payload = {
            "status": "succeeded" if result.success else "failed",
            "output": result.output,
            "error": result.error,
            "model": model,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
                "requests": usage.request_count,
            },
            "cost_usd": cost.total_cost,
        }
        click.echo(json.dumps(payload))
    else:
        if result.success:
            stdout.print(Panel(str(result.output), title="answer", title_align="left"))
        else:
            stdout.print(Panel(str(result.error), title="failed", title_align="left", style="red"))
        stdout.print(
            f"model {model} · {usage.request_count} requests · {usage.input_tokens} in / {usage.output_tokens} out "
            f"tokens · cost ${cost.total_cost:.4f}"
        )
    if not result.success:
        raise SystemExit(1)


def _progress_hooks() -> ReActHooks:
    """Hooks that show each step on stderr as it happens."""

    def thought(state: object, text: str) -> None:
        stderr.print(f"[cyan]think[/cyan]    {text}")

    def action(state: object, tool: str, args: object) -> None:
        stderr.print(f"[magenta]act[/magenta]      {tool} {args}")

    def observation(state: object, content: str, is_error: bool) -> None:
        stderr.print(f"[{'red' if is_error else 'green'}]observe[/]  {content[:200]}")

    return ReActHooks(on_thought=thought, on_action=action, on_observation=observation)
