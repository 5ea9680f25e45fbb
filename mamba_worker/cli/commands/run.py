"""``mamba run``, ``mamba resume`` and ``mamba answer``: a durable job on this machine, followed live.

Both start the embedded runtime (SQLite, the embedded broker, an in-process worker and a
reconciler; or whatever the ``runtime`` settings name), so the job runs exactly as it would on a
fleet of workers: step by step, each step committed to SQL. The run id is printed on stderr as
soon as the run exists, because Ctrl-C or a kill leaves it resumable with ``mamba resume``.
"""

from __future__ import annotations

import click

from mamba_client.schemas import AnswerRun, InDoubtDecision, RunOptions, RunStatus, SubmitRun
from mamba_worker.cli._console import stderr
from mamba_worker.cli._progress import follow, print_result
from mamba_worker.config import AgentSettings
from mamba_worker.durable import EmbeddedRuntime

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
@click.option("--tool", "tools", multiple=True, help="A tool the model may call (repeatable), e.g. --tool read_file.")
@click.option("--workflow", default="react", show_default=True, help="Registered workflow to run.")
@click.option("--max-iterations", type=int, default=None, help="ReAct iterations before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def run(
    prompt: str,
    model_name: str | None,
    tools: tuple[str, ...],
    workflow: str,
    max_iterations: int | None,
    as_json: bool,
) -> None:
    """Run PROMPT as a durable job and print the answer, usage and cost."""
    settings = AgentSettings()
    model = model_name or settings.model_backend.model
    if model is None:
        model = OFFLINE
        stderr.print(f"[yellow]{SWITCH_HINT}[/yellow]")
    request = SubmitRun(
        workflow=workflow,
        input=prompt,
        model=model,
        tools=list(tools),
        options=RunOptions(max_iterations=max_iterations),
    )
    with EmbeddedRuntime(settings) as embedded:
        submitted = embedded.service.submit(request)
        stderr.print(f"run [bold]{submitted.id}[/bold] (resume it with: mamba resume {submitted.id})", highlight=False)
        settled = _follow(embedded, submitted.id, as_json=as_json)
    raise SystemExit(print_result(settled, as_json=as_json))


@click.command(name="resume")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def resume(run_id: str, as_json: bool) -> None:
    """Continue RUN_ID from its last committed step and print the answer, usage and cost."""
    with EmbeddedRuntime(AgentSettings()) as embedded:
        resumed = embedded.service.resume(run_id)
        stderr.print(f"resuming run [bold]{resumed.id}[/bold] at step {resumed.current_seq}", highlight=False)
        settled = _follow(embedded, run_id, as_json=as_json)
    raise SystemExit(print_result(settled, as_json=as_json))


@click.command(name="answer")
@click.argument("run_id")
@click.option(
    "--decision",
    type=click.Choice([decision.value for decision in InDoubtDecision]),
    required=True,
    help="For tool calls in doubt: rerun them, skip them (the model is told the outcome is unknown), or fail the run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def answer(run_id: str, decision: str, as_json: bool) -> None:
    """Decide for RUN_ID, waiting on tool calls in doubt, then follow it and print the result."""
    with EmbeddedRuntime(AgentSettings()) as embedded:
        answered = embedded.service.answer(run_id, AnswerRun(decision=InDoubtDecision(decision)))
        stderr.print(f"answered run [bold]{answered.id}[/bold]: {decision}", highlight=False)
        settled = answered if answered.status == RunStatus.FAILED else _follow(embedded, run_id, as_json=as_json)
    raise SystemExit(print_result(settled, as_json=as_json))


def _follow(embedded: EmbeddedRuntime, run_id: str, *, as_json: bool):  # type: ignore[no-untyped-def]
    try:
        return follow(embedded.service, run_id, quiet=as_json)
    except KeyboardInterrupt:
        stderr.print(f"\ninterrupted; the run is saved. Continue it with: mamba resume {run_id}")
        raise SystemExit(130) from None
