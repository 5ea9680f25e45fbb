"""Where templates come from: registered sources, the user's folder, the bundled defaults.

Templates are addressed inside Jinja2 as ``<version>/<name><extension>``
(``v1/system/assistant.jinja2``), so ``{% extends "v1/base/base.jinja2" %}`` works from any
template, in any version and from any source. Sources are searched in this order: templates
registered in memory, the user's ``prompts_dir``, then the defaults bundled with Mamba. A user's
file therefore overrides a bundled one of the same name, and a user template can extend a
bundled base.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, TemplateNotFound

from mamba_worker.prompts.errors import InvalidTemplateNameError

REGISTERED = "<registered>"
"""How templates added with `PromptManager.register` are named in search lists and errors."""

# One path segment: no leading dot (so no ".." and no hidden files), no separators.
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_NAME_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_VERSION_RE = re.compile(_SEGMENT)
_NUMBERED_VERSION_RE = re.compile(r"v(\d+(?:\.\d+)*)")


def bundled_templates_dir() -> Path | None:
    """Return the folder of default templates shipped with Mamba, or ``None`` if there is none.

    A wheel carries them inside the package (``mamba_worker/prompts/_default_templates``, placed
    there at build time from the repository's top-level ``prompts/``). An editable or source
    checkout has no such folder, so the repository's ``prompts/`` is used directly.
    """
    packaged = importlib.resources.files("mamba_worker.prompts") / "_default_templates"
    # Only a real folder works with FileSystemLoader; a zipped install has no bundled defaults.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    # In a checkout this file is <root>/mamba_worker/prompts/_loader.py. Require the project file
    # next to prompts/, so an unrelated site-packages/prompts folder is never mistaken for ours.
    root = Path(__file__).resolve().parents[2]
    checkout = root / "prompts"
    return checkout if checkout.is_dir() and (root / "pyproject.toml").is_file() else None


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative template name (``system/assistant``), else raise."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidTemplateNameError(
            f"Template name {name!r} is not valid: use slash-separated parts of letters, digits, '_', "
            "'-' and '.', not starting with '.' or '/', without the file extension (e.g. 'system/assistant').",
            name=name,
        )
    return name


def check_version(version: str) -> str:
    """Return ``version`` if it is a plain folder name (``v1``), else raise."""
    if not _VERSION_RE.fullmatch(version):
        raise InvalidTemplateNameError(
            f"Template version {version!r} is not valid: use a plain folder name such as 'v1' or 'v2'.",
            name=version,
        )
    return version


def version_sort_key(version: str) -> tuple[int, tuple[int, ...], str]:
    """Order versions by number (``v1 < v2 < v10``, ``v1.5 < v2``); other names come after, by name."""
    match = _NUMBERED_VERSION_RE.fullmatch(version)
    if match is None:
        return (1, (), version)
    return (0, tuple(int(part) for part in match.group(1).split(".")), version)


class RegisteredLoader(BaseLoader):
    """Templates registered in memory, keyed by their Jinja2 path (``v1/test/greeting.jinja2``).

    The mapping is shared with the `PromptManager`, which adds to it; a cached template is never
    re-checked against it (the manager clears its caches on every registration instead).
    """

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = sources

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        """Return a registered template's source, with a descriptive pseudo file name."""
        try:
            source = self._sources[template]
        except KeyError:
            raise TemplateNotFound(template) from None
        # The pseudo file name makes error messages and tracebacks say where the source came from.
        return source, f"{REGISTERED} {template}", lambda: self._sources.get(template) == source

    def list_templates(self) -> list[str]:
        """Return the Jinja2 paths of all registered templates."""
        return sorted(self._sources)


@dataclass(frozen=True, kw_only=True)
class TemplateSources:
    """The places templates are looked up in, in search order."""

    registered: dict[str, str]
    """Registered sources by Jinja2 path; the manager mutates this dict."""
    folders: tuple[Path, ...]
    """Template folders that exist: the user's ``prompts_dir`` first, then the bundled defaults."""
    extension: str
    """File extension of templates, such as ``.jinja2``."""

    def loader(self) -> BaseLoader:
        """Build the Jinja2 loader that searches these places in order."""
        loaders: list[BaseLoader] = [RegisteredLoader(self.registered)]
        loaders.extend(FileSystemLoader(folder, encoding="utf-8") for folder in self.folders)
        return ChoiceLoader(loaders)

    def searched(self) -> list[str]:
        """Describe the places searched, for error messages."""
        return [REGISTERED, *(str(folder) for folder in self.folders)]

    def path_of(self, name: str, version: str) -> str:
        """Return the Jinja2 path of a template: ``<version>/<name><extension>``."""
        return f"{version}/{name}{self.extension}"

    def inventory(self) -> dict[str, set[str]]:
        """Return every template name found, by version, across all sources."""
        found: dict[str, set[str]] = {}
        for path in self.registered:
            version, _, rest = path.partition("/")
            found.setdefault(version, set()).add(rest.removesuffix(self.extension))
        for folder in self.folders:
            for version, name in self._scan(folder):
                found.setdefault(version, set()).add(name)
        return found

    def _scan(self, folder: Path) -> Iterator[tuple[str, str]]:
        for version_dir in folder.iterdir():
            if not version_dir.is_dir() or not _VERSION_RE.fullmatch(version_dir.name):
                continue
            for file in version_dir.rglob(f"*{self.extension}"):
                relative = file.relative_to(version_dir).as_posix().removesuffix(self.extension)
                if file.is_file() and _NAME_RE.fullmatch(relative):
                    yield version_dir.name, relative
