"""`get_strategy`: a strategy from its configured name."""

from __future__ import annotations

from mamba_worker.config import CompactionStrategyName
from mamba_worker.context.compaction._base import CompactionStrategy
from mamba_worker.context.compaction._hybrid import SEQUENCEABLE, HybridStrategy
from mamba_worker.errors import ConfigurationError

_STRATEGIES: dict[str, type[CompactionStrategy]] = {**SEQUENCEABLE, HybridStrategy.name: HybridStrategy}


def get_strategy(name: CompactionStrategyName | str) -> CompactionStrategy:
    """Return a new strategy for ``name``, with default options (models come from the config or caller).

    Raises:
        ConfigurationError: ``name`` is not one of the five strategies.
    """
    try:
        strategy = _STRATEGIES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown compaction strategy {name!r}; choose one of {', '.join(sorted(_STRATEGIES))}"
        ) from None
    return strategy()
