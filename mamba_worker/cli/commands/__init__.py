"""The ``mamba`` sub-commands."""
