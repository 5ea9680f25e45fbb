"""`BashPolicy`: which commands ``run_bash`` may run, and with which environment.

Commands are found by splitting the line with `shlex` at the shell's control operators (``;``,
``&``, ``&&``, ``|``, ``||``, ``(``, ``)``, newlines) and taking the first word of each segment,
after variable assignments, redirections and reserved words such as ``if`` or ``do``.

An allow-list is a real restriction, with two caveats stated here so no one relies on more: a line
that hides commands the parser cannot see (``$(...)``, backticks, ``<(...)``, ``>(...)``) is
refused, and an allowed command that runs other commands (``xargs``, ``find -exec``, ``env``,
``bash``, ``sudo``) extends the allow-list to everything. A deny-list is only a guard against
accidents: a shell offers endless ways to run a denied program (``/bin/r''m``, ``eval``, a script
file), so it is not a security boundary.

The environment is built from an allow-list of harmless variables (``PATH``, ``HOME``, locale,
terminal, time zone, ...): no ``MAMBA_*`` setting, API key, token or cloud credential reaches the
command unless the policy names it in ``pass_env`` or sets it in ``env``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.tools.errors import SandboxRule, SandboxViolation

__all__ = ["BashPolicy", "SAFE_ENVIRONMENT", "command_names", "scrubbed_environment"]

SAFE_ENVIRONMENT: frozenset[str] = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "COLUMNS", "LINES"}
)
"""Variables ``run_bash`` passes through by default (plus every ``LC_*`` locale variable)."""

_SEPARATORS = frozenset({";", "&", "&&", "|", "||", "|&", "(", ")", ";;", ";&", ";;&", "\n"})
_REDIRECTIONS = frozenset({"<", ">", ">>", "<<", "<<<", "<&", ">&", "&>", "&>>", "<>", ">|"})
_PREFIX_WORDS = frozenset(
    {"!", "{", "}", "if", "then", "elif", "else", "do", "while", "until", "time", "fi", "done", "esac"}
)
_HEADER_WORDS = frozenset({"for", "case", "select"})
_HIDDEN_COMMANDS = re.compile(r"\$\(|`|<\(|>\(")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")


class BashPolicy(BaseModel):
    """What ``run_bash`` may run, and the environment it runs with.

    Example:
        ```python
        policy = BashPolicy(allowed_commands=["ls", "cat", "grep", "python"], max_timeout=120)
        tools = builtin_tools(security, bash_policy=policy)
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_commands: frozenset[str] | None = None
    """If set, every command of the line must be one of these names (compared by base name, so
    ``/bin/ls`` is ``ls``). Lines with ``$(...)``, backticks or process substitution are refused."""
    denied_commands: frozenset[str] = frozenset()
    """Commands refused wherever they appear in the line. Not a security boundary (see module doc)."""
    max_timeout: float | None = Field(default=None, gt=0)
    """Upper bound on a call's ``timeout``; a larger request is lowered to it."""
    pass_env: frozenset[str] = frozenset()
    """Extra variables copied from this process's environment, on top of `SAFE_ENVIRONMENT`."""
    env: Mapping[str, str] = Field(default_factory=dict)
    """Variables set for every command (after the copied ones, so these win)."""

    def check(self, command: str) -> None:
        """Refuse ``command`` if it breaks the allow-list or the deny-list.

        Raises:
            SandboxViolation: The command is refused; ``path`` names the offending command word.
        """
        if self.allowed_commands is None and not self.denied_commands:
            return
        if self.allowed_commands is not None and _HIDDEN_COMMANDS.search(command):
            raise SandboxViolation(
                f"command line {command!r} runs commands inside $(...), backticks or <(...), which the "
                "allow-list cannot check; run them as separate commands",
                path=None,
                rule=SandboxRule.UNPARSABLE_COMMAND,
            )
        for name in command_names(command):
            base = os.path.basename(name)
            if base in self.denied_commands or name in self.denied_commands:
                raise SandboxViolation(
                    f"command {base!r} is denied by the bash policy", path=base, rule=SandboxRule.COMMAND_DENIED
                )
            if self.allowed_commands is not None and base not in self.allowed_commands:
                allowed = ", ".join(sorted(self.allowed_commands)) or "none"
                raise SandboxViolation(
                    f"command {base!r} is not in the bash policy's allow-list ({allowed})",
                    path=base,
                    rule=SandboxRule.COMMAND_NOT_ALLOWED,
                )


def command_names(command: str) -> list[str]:
    """The command words of a shell line, in order (``"cd x && ls | wc"`` gives cd, ls, wc).

    Raises:
        SandboxViolation: The line cannot be split (an unclosed quote, for instance).
    """
    # A newline separates commands like ';'. Inside quotes the replacement stays inside one word,
    # so it can only add a segment (a heredoc body line), never hide one.
    text = command.replace("\r", "\n").replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as error:
        raise SandboxViolation(
            f"command line {command!r} cannot be parsed ({error}); check its quoting",
            path=None,
            rule=SandboxRule.UNPARSABLE_COMMAND,
        ) from None
    names: list[str] = []
    expecting = True  # the next plain word is a command name
    skip_next = False  # the next word is a redirection target
    for index, token in enumerate(tokens):
        if skip_next:
            skip_next = False
        elif token in _SEPARATORS or token.strip() == "":
            expecting = True
        elif token in _REDIRECTIONS:
            skip_next = True
        elif not expecting:
            continue
        elif token.isdigit() and index + 1 < len(tokens) and tokens[index + 1] in _REDIRECTIONS:
            continue  # a file descriptor number such as the 2 in 2>/dev/null
        elif token in _PREFIX_WORDS or _ASSIGNMENT.match(token):
            continue
        elif token in _HEADER_WORDS:
            expecting = False  # "for i in a b": the rest of the segment is not a command
        else:
            names.append(token)
            expecting = False
    return names


def scrubbed_environment(
    environ: Mapping[str, str], *, policy: BashPolicy | None = None, home: str | None = None
) -> dict[str, str]:
    """The environment a command runs with: harmless variables only, plus what the policy adds.

    Args:
        environ: The environment to take variables from (usually ``os.environ``).
        policy: Adds ``pass_env`` names and ``env`` values.
        home: A value for ``HOME`` (the sandbox directory, so ``~`` stays inside it).

    Returns:
        A new environment mapping.
    """
    passed = SAFE_ENVIRONMENT | (policy.pass_env if policy is not None else frozenset())
    env = {name: value for name, value in environ.items() if name in passed or name.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    if home is not None:
        env["HOME"] = home
    if policy is not None:
        env.update(policy.env)
    return env
