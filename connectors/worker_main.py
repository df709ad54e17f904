"""A script that calls ragline runs as written, without ``if __name__ == "__main__":``.

Every parser worker is started by Python's multiprocessing, which first runs the
caller's main script again in the worker (as ``__mp_main__``) so that functions
defined there can be unpickled. A script with no main guard then builds a second
``Ragline`` in each worker, which finds the index locked, and the pool breaks.

The workers need nothing from that script: they parse with ``connectors`` alone.
The parser pool's forkserver imports this module (its preload list), so every
worker forked from it inherits the change: multiprocessing's re-run of the main
script is wrapped (in any other process the wrapper is never called: the re-run
happens only in a new child, before it imports anything), and when the script
reaches ``Ragline(...)`` (:func:`stop_if_rerun`) the rest of it is skipped and
the worker goes on to parse. What the script does above that line (imports,
settings) runs once more in each worker, as it would in any multiprocessing
program.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing import spawn
from typing import Any

_rerunning = False


class _RerunStopped(BaseException):
    """Ends a worker's re-run of the caller's script where it would build a Ragline; caught right away."""


def stop_if_rerun() -> None:
    """Called where a script first builds ragline: in a parser worker re-running the script, stop the re-run."""
    if _rerunning:
        raise _RerunStopped


def _stoppable(fixup: Callable[..., Any]) -> Callable[..., Any]:
    def rerun_main(*args: Any) -> None:
        global _rerunning
        _rerunning = True
        try:
            fixup(*args)
        except _RerunStopped:
            pass  # the script's own work is not the worker's; what it defined so far stays importable
        finally:
            _rerunning = False

    rerun_main.ragline_stoppable = True  # type: ignore[attr-defined]
    return rerun_main


def _install() -> None:
    """Wrap the two ways multiprocessing re-runs a main script (``python script.py``, ``python -m module``).
    A Python without them keeps its behaviour, and the pool's one-line error still names the guard."""
    for name in ("_fixup_main_from_path", "_fixup_main_from_name"):
        fixup = getattr(spawn, name, None)
        if callable(fixup) and not getattr(fixup, "ragline_stoppable", False):
            setattr(spawn, name, _stoppable(fixup))


_install()
