"""The ``mamba`` command: ``run``, ``config show`` (and the runtime's commands).

Layer 8: may import everything below.
"""

from mamba_worker.cli._main import cli, main

__all__ = ["cli", "main"]
