"""The MCP error leaves: place in the tree, stable codes, pickling with their attributes."""

from __future__ import annotations

import pickle

import pytest

from mamba_worker.errors import ConfigurationError, MambaError, UsageError
from mamba_worker.mcp import (
    MCPAuthError,
    MCPCommandNotFoundError,
    MCPConfigError,
    MCPError,
    MCPServerNotFoundError,
)


@pytest.mark.parametrize(
    "error",
    [
        MCPConfigError("bad", path="/x/.mcp.json", line=3, column=7, server="s", field="url"),
        MCPAuthError("unset", server="s", variable="KEY"),
        MCPCommandNotFoundError("missing", server="s", command="npx"),
        MCPServerNotFoundError("unknown", server="s", known=["a", "b"]),
    ],
)
def test_errors_pickle_with_their_attributes(error: MCPError) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert copy.message == error.message
    assert vars(copy) == vars(error)


def test_config_errors_are_configuration_errors() -> None:
    for cls in (MCPConfigError, MCPAuthError, MCPCommandNotFoundError):
        assert issubclass(cls, MCPError) and issubclass(cls, ConfigurationError)
    assert issubclass(MCPServerNotFoundError, UsageError) and issubclass(MCPServerNotFoundError, MambaError)


def test_codes_are_distinct() -> None:
    codes = [
        cls.code for cls in (MCPError, MCPConfigError, MCPAuthError, MCPCommandNotFoundError, MCPServerNotFoundError)
    ]

    assert len(set(codes)) == len(codes)
