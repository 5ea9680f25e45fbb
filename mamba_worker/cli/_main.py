"""The ``mamba`` command line."""

from __future__ import annotations

import sys

import click

from mamba_worker.cli._console import stderr
from mamba_worker.cli.commands.config import config_group
from mamba_worker.cli.commands.run import answer, resume, run
from mamba_worker.cli.commands.status import status
from mamba_worker.cli.commands.worker import worker
from mamba_worker.config import AgentSettings
from mamba_worker.errors import MambaError
from mamba_worker.observability import register_model_secrets, setup_logging


@click.group()
def cli() -> None:
    """Mamba: durable workflows for AI agents."""
    settings = AgentSettings()
    setup_logging(settings.logging)
    # Secrets from the settings are masked in every log line from here on, wherever they turn up.
    register_model_secrets(settings)


cli.add_command(run)
cli.add_command(resume)
cli.add_command(answer)
cli.add_command(status)
cli.add_command(worker)
cli.add_command(config_group)


def main() -> None:
    """Entry point of the ``mamba`` console script: Mamba errors print as one clear line, not a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        stderr.print("aborted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except MambaError as error:
        stderr.print(f"[red]error[/red] ({error.code}): {error}")
        sys.exit(2)
