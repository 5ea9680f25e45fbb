"""`PromptManager`: finds, compiles, caches and renders versioned prompt templates."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from mamba_worker.config import PromptConfig, TemplateConfig
from mamba_worker.prompts._environment import PromptSandbox, create_environment
from mamba_worker.prompts._loader import (
    TemplateSources,
    bundled_templates_dir,
    check_name,
    check_version,
    version_sort_key,
)
from mamba_worker.prompts._template import PromptTemplate, translate_error

logger = logging.getLogger(__name__)


class PromptManager:
    """Loads Jinja2 prompt templates from versioned folders, and renders them in a sandbox.

    Templates live in version folders (``v1/system/assistant.jinja2``) and are asked for by
    name and, optionally, version (``get("system/assistant", version="v2")``); without a
    version, `PromptConfig.default_version` is used. A template may extend or include any other
    by its full path, across versions: ``{% extends "v1/base/base.jinja2" %}``.

    Templates are searched in this order: those added with `register`, then
    `PromptConfig.prompts_dir`, then the defaults bundled with Mamba (``system/assistant``,
    ``system/coder``, ``workflow/react_system``, ``workflow/react_iteration`` and
    ``base/base``), unless `PromptConfig.include_defaults` is off.

    With `PromptConfig.enable_caching`, compiled templates are kept and files are not re-read
    until `clear_cache` (or `register`, which clears the cache itself). A manager is safe to
    share between threads.

    Example:
        ```python
        manager = PromptManager(PromptConfig(prompts_dir="./prompts"))
        prompt = manager.render("system/assistant", name="Helper")
        manager.register("test/greeting", "Hello, {{ name }}!")
        manager.render("test/greeting", name="World")  # 'Hello, World!'
        ```
    """

    def __init__(self, config: PromptConfig | None = None) -> None:
        """Create a manager.

        Args:
            config: Where templates live and how they render; `PromptConfig()` (bundled defaults
                only, version ``v1``) when omitted.
        """
        self._config = config if config is not None else PromptConfig()
        self._sources = TemplateSources(
            registered={}, folders=self._folders(self._config), extension=self._config.file_extension
        )
        self._env: PromptSandbox = create_environment(
            loader=self._sources.loader(), strict=self._config.strict_mode, caching=self._config.enable_caching
        )
        self._cache: dict[tuple[str, str], PromptTemplate] = {}
        # Guards the registered sources and both caches, so a registration and its cache
        # invalidation are seen together by other threads.
        self._lock = threading.Lock()

    @staticmethod
    def _folders(config: PromptConfig) -> tuple[Path, ...]:
        folders: list[Path] = []
        if config.prompts_dir is not None:
            user_dir = config.prompts_dir.expanduser().resolve()
            if user_dir.is_dir():
                folders.append(user_dir)
            else:
                logger.warning(
                    "prompts_dir %s does not exist or is not a folder; only %s templates are available",
                    user_dir,
                    "registered and bundled" if config.include_defaults else "registered",
                )
        if config.include_defaults:
            bundled = bundled_templates_dir()
            if bundled is not None and bundled not in folders:
                folders.append(bundled)
        return tuple(folders)

    @property
    def config(self) -> PromptConfig:
        """The configuration this manager was created with."""
        return self._config

    @property
    def search_path(self) -> list[str]:
        """The places templates are looked up in, in order (``<registered>`` first)."""
        return self._sources.searched()

    def get(self, name: str, version: str | None = None) -> PromptTemplate:
        """Return the compiled template ``name`` in ``version``.

        Args:
            name: Template name, such as ``system/assistant`` (no version, no extension).
            version: Version folder, such as ``v2``; `PromptConfig.default_version` when ``None``.

        Raises:
            InvalidTemplateNameError: ``name`` or ``version`` is not a plain relative path.
            TemplateNotFoundError: No such template in any searched place.
            TemplateSyntaxError: The template is not valid Jinja2.
        """
        name = check_name(name)
        version = check_version(version if version is not None else self._config.default_version)
        key = (version, name)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        template = self._load(name, version)
        if self._config.enable_caching:
            with self._lock:
                # If another thread loaded it meanwhile, keep the first one: both are equivalent.
                template = self._cache.setdefault(key, template)
        return template

    def _load(self, name: str, version: str) -> PromptTemplate:
        path = self._sources.path_of(name, version)
        try:
            compiled = self._env.get_template(path)
            source, _ = self._source_of(path)
            variables = self._variables_of(path)
        except jinja2.TemplateError as exc:
            raise translate_error(
                exc,
                name=name,
                version=version,
                searched=self.search_path,
                extension=self._sources.extension,
                strict=self._config.strict_mode,
            ) from exc
        return PromptTemplate(
            name=name,
            version=version,
            compiled=compiled,
            source=source,
            variables=variables,
            normalize=self._config.normalize_whitespace,
            searched=tuple(self.search_path),
            extension=self._sources.extension,
            strict=self._config.strict_mode,
        )

    def _source_of(self, path: str) -> tuple[str, str | None]:
        loader = self._env.loader
        assert loader is not None  # always set in __init__
        source, filename, _ = loader.get_source(self._env, path)
        return source, filename

    def _variables_of(self, path: str) -> frozenset[str]:
        # Union over the template and everything it extends, includes or imports (by constant
        # name), so a caller sees every variable the rendered prompt may read. Missing
        # references are skipped here; rendering reports them with a clear error.
        found: set[str] = set()
        seen: set[str] = set()
        pending = [path]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source, filename = self._source_of(current)
            except jinja2.TemplateNotFound:
                continue
            ast = self._env.parse(source, current, filename)
            found |= meta.find_undeclared_variables(ast)
            pending.extend(ref for ref in meta.find_referenced_templates(ast) if ref is not None)
        return frozenset(found)

    def render(self, template_name: str, /, *, version: str | None = None, **variables: Any) -> str:
        """Render a template in one call: ``get(template_name, version).render(**variables)``.

        ``template_name`` is positional-only, so a template variable may be called ``name``:
        ``manager.render("system/assistant", name="Code Helper")``. A variable called ``version``
        cannot be passed this way; use ``get(...).render(version=...)`` for that.

        Args:
            template_name: Template name, such as ``system/assistant``.
            version: Version folder; `PromptConfig.default_version` when ``None``.
            **variables: Values for the template's variables.

        Raises:
            PromptError: As `get` and `PromptTemplate.render` raise.
        """
        return self.get(template_name, version).render(**variables)

    def render_config(self, config: TemplateConfig) -> str:
        """Render the template a `TemplateConfig` names, with its variables.

        Raises:
            PromptError: As `get` and `PromptTemplate.render` raise.
        """
        return self.render(config.name, version=config.version, **config.variables)

    def exists(self, name: str, *, version: str | None = None) -> bool:
        """Return whether template ``name`` exists in ``version`` (default version when ``None``)."""
        version = check_version(version if version is not None else self._config.default_version)
        return check_name(name) in self._inventory().get(version, set())

    def list_prompts(self, category: str | None = None, *, version: str | None = None) -> list[str]:
        """List template names in a version, sorted, optionally only those in one category.

        Args:
            category: A category (the first part of a name, such as ``system``); all when ``None``.
                Nested categories work too (``workflow/react``).
            version: Version folder; `PromptConfig.default_version` when ``None``.
        """
        version = check_version(version if version is not None else self._config.default_version)
        names = self._inventory().get(version, set())
        if category is not None:
            prefix = check_name(category.strip("/")) + "/"
            names = {name for name in names if name.startswith(prefix)}
        return sorted(names)

    def list_versions(self, name: str) -> list[str]:
        """List the versions in which template ``name`` exists, oldest first (``v1 < v2 < v10``)."""
        name = check_name(name)
        versions = [version for version, names in self._inventory().items() if name in names]
        return sorted(versions, key=version_sort_key)

    def _inventory(self) -> dict[str, set[str]]:
        with self._lock:
            return self._sources.inventory()

    def register(self, name: str, source: str, *, version: str | None = None) -> None:
        """Add a template from text, in memory; it takes precedence over files of the same name.

        Registering clears the cache, so templates that extend or include this one see it.
        Registered text is untrusted like any other template: it renders in the sandbox.

        Args:
            name: Template name, such as ``test/greeting``.
            source: Jinja2 source.
            version: Version folder; `PromptConfig.default_version` when ``None``.

        Raises:
            InvalidTemplateNameError: ``name`` or ``version`` is not a plain relative path.
            TemplateSyntaxError: ``source`` is not valid Jinja2 (checked now, not at first use).
        """
        name = check_name(name)
        version = check_version(version if version is not None else self._config.default_version)
        path = self._sources.path_of(name, version)
        try:
            self._env.parse(source, path, f"<registered> {path}")
        except jinja2.TemplateSyntaxError as exc:
            raise translate_error(
                exc,
                name=name,
                version=version,
                searched=self.search_path,
                extension=self._sources.extension,
                strict=self._config.strict_mode,
            ) from exc
        with self._lock:
            self._sources.registered[path] = source
            self._clear_locked()

    def clear_cache(self) -> None:
        """Forget compiled templates, so the next `get` re-reads files from disk."""
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        self._cache.clear()
        # Jinja keeps its own cache of compiled templates (parents are looked up through it at
        # render time); it must go too, or an edited parent would still render the old text.
        if self._env.cache is not None:
            self._env.cache.clear()
