"""Rich consoles: results on stdout, progress and notices on stderr (so ``--json`` stays clean)."""

from __future__ import annotations

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)
