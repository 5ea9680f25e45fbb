"""Following a durable run live: its events as they are committed, rendered with rich."""

from __future__ import annotations

import json
import time
from typing import assert_never

from mamba_client.schemas import (
    Compacted,
    Event,
    ModelResponseRecorded,
    ReasoningRecorded,
    Run,
    RunCancelled,
    RunFailed,
    RunResumed,
    RunStarted,
    RunStatus,
    RunSubmitted,
    RunSucceeded,
    RunWaiting,
    StepCommitted,
    StepFailed,
    StepRedispatched,
    StepStarted,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallInDoubt,
    ToolCallStarted,
)
from mamba_worker.cli._console import stderr, stdout
from mamba_worker.durable import RunService

SETTLED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.WAITING}


def follow(service: RunService, run_id: str, *, quiet: bool, poll_interval: float = 0.05) -> Run:
    """Print the run's events as they are committed until it settles; return the settled run."""
    last = 0
    while True:
        run = service.get(run_id)
        for event in service.events(run_id, after_seq=last):
            last = event.seq
            if not quiet:
                line = render(event)
                if line:
                    stderr.print(line, highlight=False)
        if run.status in SETTLED and run.updated_at is not None:
            # One more read so events committed with the final status are shown too.
            for event in service.events(run_id, after_seq=last):
                last = event.seq
                if not quiet and (line := render(event)):
                    stderr.print(line, highlight=False)
            return run
        time.sleep(poll_interval)


def render(event: Event) -> str | None:
    """One line for a person, or ``None`` for events not worth a line."""
    match event:
        case StepStarted(step_seq=seq, step=step, attempt=attempt):
            again = f" [yellow](attempt {attempt})[/yellow]" if attempt > 1 else ""
            return f"[dim]step {seq:>3}[/dim] [bold]{step}[/bold]{again}"
        case ReasoningRecorded(entry_type="thought", content=text):
            return f"          [cyan]thought[/cyan]  {_short(text)}"
        case ReasoningRecorded(entry_type="action", content=text):
            return f"          [magenta]action[/magenta]   {_short(text)}"
        case ReasoningRecorded(entry_type=kind, content=text):
            return f"          [green]{kind:<8}[/green] {_short(text)}"
        case StepRedispatched(step_seq=seq, step=step, reason=reason):
            return f"[yellow]step {seq:>3} {step} sent again ({reason})[/yellow]"
        case StepFailed(step_seq=seq, step=step, error=error, will_retry=retry):
            return f"[red]step {seq:>3} {step} failed: {error.message}[/red]" + (
                " [yellow](will retry)[/yellow]" if retry else ""
            )
        case Compacted(strategy=strategy, tokens_before=before, tokens_after=after):
            return f"          [blue]compacted[/blue] {strategy}: {before} → {after} tokens"
        case RunResumed(from_seq=seq):
            return f"[yellow]resumed from step {seq}[/yellow]"
        case RunWaiting(waiting=waiting):
            return f"[yellow]waiting ({waiting.reason}): {waiting.prompt or ''}[/yellow]"
        case ToolCallInDoubt(tool_name=tool):
            return f"[yellow]tool call {tool} is in doubt[/yellow]"
        case (
            RunSubmitted()
            | RunStarted()
            | StepCommitted()
            | ModelResponseRecorded()
            | ToolCallStarted()
            | ToolCallFinished()
            | ToolCallFailed()
            | RunSucceeded()
            | RunFailed()
            | RunCancelled()
        ):
            return None
        case _:
            assert_never(event)


def print_result(run: Run, *, as_json: bool) -> int:
    """Print the outcome (answer, usage, cost) and return the process exit code."""
    usage = run.usage
    if as_json:
        payload = {
            "run_id": run.id,
            "status": run.status.value,
            "output": run.output,
            "error": run.error.model_dump() if run.error else None,
            "model": run.model,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
                "requests": usage.requests,
            },
            "cost_usd": usage.cost_usd,
        }
        print(json.dumps(payload))
    else:
        from rich.panel import Panel

        if run.status == RunStatus.SUCCEEDED:
            stdout.print(Panel(_text(run.output), title="answer", title_align="left"))
        else:
            message = run.error.message if run.error else run.status.value
            stdout.print(Panel(message, title=run.status.value, title_align="left", style="red"))
        stdout.print(
            f"run {run.id} · model {run.model} · {usage.requests} requests · "
            f"{usage.input_tokens} in / {usage.output_tokens} out tokens · cost ${usage.cost_usd:.4f}",
            highlight=False,
        )
    return {RunStatus.SUCCEEDED: 0, RunStatus.WAITING: 3}.get(run.status, 1)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
