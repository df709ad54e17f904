"""ragline's import name: ``from ragline import Ragline``.

The code lives in ``pipeline`` (the pipeline's parts) and ``connectors`` (the file parsers), as the design
lays them out; this package only re-exports what a program that uses ragline needs, so that it reads as the
product's name and a module called ``pipeline.py`` in a user's own project cannot hide it. Importing it is
cheap: each name loads its module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.app import Answer, Ragline, SearchResponse
    from pipeline.config import AppConfig, load_config, with_index
    from pipeline.errors import RaglineError
    from pipeline.filters import SearchFilter, parse_filter
    from pipeline.stages.prompt import Prompt
    from pipeline.sync import SyncReport
    from pipeline.types import Chunk, Document, ScoredChunk

__version__ = "0.1.0"

_EXPORTS = {
    "Ragline": "pipeline.app",
    "SearchResponse": "pipeline.app",
    "Answer": "pipeline.app",
    "Prompt": "pipeline.stages.prompt",
    "SyncReport": "pipeline.sync",
    "AppConfig": "pipeline.config",
    "load_config": "pipeline.config",
    "with_index": "pipeline.config",
    "SearchFilter": "pipeline.filters",
    "parse_filter": "pipeline.filters",
    "RaglineError": "pipeline.errors",
    "Chunk": "pipeline.types",
    "Document": "pipeline.types",
    "ScoredChunk": "pipeline.types",
}

__all__ = [
    "Answer",
    "AppConfig",
    "Chunk",
    "Document",
    "Prompt",
    "Ragline",
    "RaglineError",
    "ScoredChunk",
    "SearchFilter",
    "SearchResponse",
    "SyncReport",
    "__version__",
    "load_config",
    "parse_filter",
    "with_index",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ragline' has no attribute {name!r}")
    try:
        module = import_module(_EXPORTS[name])
    except ModuleNotFoundError as exc:
        raise ImportError(_shadowed() or str(exc)) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def _shadowed() -> str | None:
    """Say which of a user's own modules hides ragline's packages (ragline imports them by these names)."""
    import sys

    for package in ("pipeline", "connectors"):
        found = sys.modules.get(package)
        if found is not None and not hasattr(found, "__path__"):
            return (
                f"your module {getattr(found, '__file__', package)} hides ragline's own package {package!r}: "
                "rename it (ragline's parts are imported as pipeline and connectors)"
            )
    return None


def __dir__() -> list[str]:
    return __all__
