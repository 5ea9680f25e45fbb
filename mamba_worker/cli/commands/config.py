"""``mamba config show``: the effective settings, secrets masked."""

from __future__ import annotations

import json
from typing import Any

import click
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from mamba_worker.cli._console import stdout
from mamba_worker.config import AgentSettings

MASK = "**********"


def masked_settings(settings: AgentSettings) -> dict[str, Any]:
    """The settings as plain data, with every secret replaced by a mask (unset secrets stay ``None``)."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    # Dump in python mode so SecretStr objects survive to be masked here, then make it JSON-safe.
    data: dict[str, Any] = walk(settings.model_dump(mode="python"))
    safe: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return safe


@click.group(name="config")
def config_group() -> None:
    """Inspect Mamba's configuration."""


@config_group.command(name="show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(as_json: bool) -> None:
    """Print the effective settings (env > .env > ~/mamba.env > config.toml > defaults)."""
    data = masked_settings(AgentSettings())
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for section, values in data.items():
        table = Table(title=escape(f"[{section}]"), title_justify="left", show_header=False, box=None, padding=(0, 2))
        for key, value in values.items():
            table.add_row(f"{section}.{key}", json.dumps(value))
        stdout.print(table)
