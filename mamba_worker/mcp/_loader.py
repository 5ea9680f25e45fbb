"""`load_mcp_json`: read a ``.mcp.json`` file (Claude Desktop format) into `MCPServerConfig`s.

The whole file is read, expanded and validated before anything is returned, so a caller that
merges files (`MCPClientManager.add_from_file`) never keeps half of a bad one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mamba_worker.mcp._config import InvalidFieldError, MCPServerConfig
from mamba_worker.mcp.errors import MCPConfigError

# ${VAR} or ${VAR:-default}; the default may be empty but may not contain "}".
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last of two equal keys; two servers of one name is a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def load_mcp_json(path: str | os.PathLike[str]) -> list[MCPServerConfig]:
    """Load the servers of a ``.mcp.json`` file, in file order.

    The file has the Claude Desktop shape::

        {"mcpServers": {
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
                           "env": {"TOKEN": "${FS_TOKEN}"}, "tool_prefix": "fs"},
            "web": {"url": "http://localhost:8080/sse", "auth": {"key_env": "WEB_KEY"}}
        }}

    Each entry takes the fields of `MCPServerConfig` (its key is the ``name``). ``type`` is read
    as ``transport`` (``"http"`` meaning Streamable HTTP), as Claude Code writes it. Every string
    may use ``${VAR}`` or ``${VAR:-default}``, expanded from the environment now. ``~`` is
    expanded in ``path``, ``command`` and ``cwd``, and a relative ``cwd`` is taken relative to the
    file's folder, so a project's file works from anywhere.

    Args:
        path: The file to read.

    Returns:
        One config per server entry.

    Raises:
        MCPConfigError: The file is missing or unreadable, is not valid JSON (the message gives
            line and column), lacks ``mcpServers``, uses an unset variable without a default, or
            has an invalid server entry (the message names the server and the field).
    """
    file = Path(path).expanduser()
    text = _read(file)
    data = _parse(file, text)
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise MCPConfigError(
            f'{file}: expected a JSON object with an "mcpServers" object mapping server names to their settings',
            path=str(file),
        )
    return [_server(file, text, name, entry) for name, entry in servers.items()]


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MCPConfigError(f"MCP config file {file} does not exist", path=str(file)) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise MCPConfigError(f"cannot read MCP config file {file}: {reason}", path=str(file)) from None


def _parse(file: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise MCPConfigError(
            f"{file}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}",
            path=str(file),
            line=error.lineno,
            column=error.colno,
        ) from None
    except _DuplicateKeyError as error:
        raise MCPConfigError(
            f"{file}: the key {error.key!r} appears twice in one object; keep one", path=str(file)
        ) from None


def _line_of(text: str, name: str) -> int | None:
    """The line where the entry for server ``name`` starts, found by its key after ``mcpServers``."""
    start = text.find('"mcpServers"')
    key = re.compile(re.escape(json.dumps(name, ensure_ascii=False)) + r"\s*:")
    match = key.search(text, max(start, 0))
    return text.count("\n", 0, match.start()) + 1 if match else None


def _server(file: Path, text: str, name: str, entry: Any) -> MCPServerConfig:
    line = _line_of(text, name)
    where = f"{file}:{line}" if line is not None else str(file)

    def fail(field: str | None, problem: str) -> MCPConfigError:
        on_field = f" field `{field}`" if field else ""
        return MCPConfigError(
            f"{where}: MCP server {name!r}{on_field}: {problem}", path=str(file), line=line, server=name, field=field
        )

    if not isinstance(entry, dict):
        raise fail(None, "expected an object of settings such as command/args or url")
    if "name" in entry:
        raise fail("name", "remove it; the key of the entry is the server's name")
    settings = dict(entry)
    if "type" in settings:
        if "transport" in settings:
            raise fail("type", "give either `type` or `transport`, not both")
        settings["transport"] = settings.pop("type")
    settings = {key: _expand(value, key, fail) for key, value in settings.items()}
    cwd = settings.get("cwd")
    if isinstance(cwd, str) and not cwd.startswith("~") and not Path(cwd).is_absolute():
        settings["cwd"] = str(file.parent / cwd)
    try:
        return MCPServerConfig.model_validate({**settings, "name": name})
    except ValidationError as error:
        raise _from_validation_error(error, fail) from None


def _expand(value: Any, field: str, fail: Callable[[str | None, str], MCPConfigError]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            variable, default = match.group(1), match.group(2)
            found = os.environ.get(variable)
            if found is not None:
                return found
            if default is not None:
                return default
            raise fail(
                field, f"environment variable ${{{variable}}} is not set; set it, or write ${{{variable}:-default}}"
            )

        return _ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _expand(item, f"{field}.{key}", fail) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, f"{field}[{index}]", fail) for index, item in enumerate(value)]
    return value


def _from_validation_error(error: ValidationError, fail: Callable[[str | None, str], MCPConfigError]) -> MCPConfigError:
    problems: list[tuple[str | None, str]] = []
    for detail in error.errors(include_input=False, include_url=False):
        cause = detail.get("ctx", {}).get("error")
        location = ".".join(str(part) for part in detail["loc"])
        field = cause.field if isinstance(cause, InvalidFieldError) else location or None
        if isinstance(cause, ValueError):
            message = str(cause)
        elif detail["type"] == "extra_forbidden":
            message = "is not a known setting; check its spelling"
        else:
            message = detail["msg"]
        problems.append((field, message))
    field, message = problems[0]
    if len(problems) > 1:
        message += "; also " + "; ".join(f"`{f}`: {m}" if f else m for f, m in problems[1:])
    return fail(field, message)
