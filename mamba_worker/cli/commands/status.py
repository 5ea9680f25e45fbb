"""``mamba status``: a run, its steps and its usage."""

from __future__ import annotations

import click
from rich.table import Table

from mamba_worker.cli._console import stdout
from mamba_worker.config import AgentSettings
from mamba_worker.durable import RunService, Runtime


@click.command(name="status")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def status(run_id: str, as_json: bool) -> None:
    """Show RUN_ID's status and steps."""
    runtime = Runtime(AgentSettings())
    service = RunService(runtime)
    try:
        run = service.get(run_id)
        if as_json:
            click.echo(run.model_dump_json(indent=2))
            return
        stdout.print(f"run {run.id} · {run.workflow} · [bold]{run.status}[/bold] · model {run.model}", highlight=False)
        table = Table("seq", "step", "status", "attempt", "tokens", "error")
        for step in service.steps(run_id):
            table.add_row(
                str(step.seq),
                step.name,
                step.status.value,
                str(step.attempt),
                str(step.usage.total_tokens),
                step.error.message[:80] if step.error else "",
            )
        stdout.print(table)
    finally:
        runtime.dispose()
