"""Read, hash and parse files in worker processes, each call bounded in time.

A parser that hangs or crashes on a hostile file (a PDF built to loop, a
multi-megabyte line) must cost one skipped file, not the sync: every file is
parsed in a pebble worker that is killed when it runs past ``timeout_s`` or
dies. Workers come from a ``forkserver``, so they never inherit the parent's
open index lock or model threads. The pool also lets parsing run beside the
embedding in the parent process; results arrive as they finish, with a
bounded number in flight so memory stays flat on large folders.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, TimeoutError, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from pipeline.errors import RaglineError, UnreadableFileError
from pipeline.types import Document

from ._text import DEFAULT_OPTIONS, ParseOptions
from .folder import SourceFile
from .loader import content_hash, read_document, read_stable


@dataclass(frozen=True)
class ParseOutcome:
    """What became of one file: a document, ``unchanged`` (its hash matched), or ``error``."""

    file: SourceFile
    document: Document | None = None
    unchanged: bool = False
    error: str | None = None
    seconds: float = 0.0
    """Time the worker spent reading, hashing and parsing."""
    notice: str | None = None
    """What the sync report says once, whichever files met it (OCR that is not available here, say)."""


def load(
    file: SourceFile, known_hash: str | None = None, options: ParseOptions = DEFAULT_OPTIONS, allowed: float = 0.0
) -> ParseOutcome:
    """Read and parse one file (in a worker); ``known_hash`` lets an unchanged file skip parsing. ``allowed``:
    the seconds the file has before its worker is stopped (OCR stops short of them and keeps what it read)."""
    started = time.perf_counter()
    if allowed:
        options = options._replace(deadline=time.monotonic() + 0.85 * allowed)
    try:
        data = read_stable(file)
        digest = content_hash(data)
        if digest == known_hash:
            outcome = ParseOutcome(file, unchanged=True)
        else:
            document, notice = read_document(file, data, digest, options)
            outcome = ParseOutcome(file, document=document, notice=notice)
    except UnreadableFileError as exc:
        outcome = ParseOutcome(file, error=str(exc), notice=exc.notice)
    return dataclasses.replace(outcome, seconds=time.perf_counter() - started)


def allowed_s(file: SourceFile, timeout_s: float) -> float:
    """The time limit for one file: ``timeout_s`` per MB, at least ``timeout_s`` (a 2,400-page
    manual needs minutes; a 90 KB zip bomb gets the minimum)."""
    return round(timeout_s * max(1.0, file.size / 1_000_000), 1)


LoggingSetup = tuple[int, dict[str, int], str | None]
"""The root logger's level, the levels set on named loggers, and the format of the root's first handler
(None: the process has configured no handler)."""


def logging_setup() -> LoggingSetup:
    """This process's logging, to be set up the same in the workers (a forkserver child inherits none of it,
    so ``pypdf`` set to ERROR in the CLI still printed a warning per odd font in every worker)."""
    manager = logging.Logger.manager
    levels = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    handlers = logging.getLogger().handlers
    formatter = handlers[0].formatter if handlers else None
    fmt = getattr(formatter, "_fmt", None) or ("%(levelname)s:%(name)s:%(message)s" if handlers else None)
    return logging.getLogger().level, levels, fmt


def inherit_logging(setup: LoggingSetup) -> None:
    """Run in each worker as it starts: take the parent's logging (see :func:`logging_setup`)."""
    root_level, levels, fmt = setup
    if fmt is not None:
        logging.basicConfig(level=root_level, format=fmt, force=True)
    logging.getLogger().setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


def parse_files(
    files: Sequence[tuple[SourceFile, str | None]],
    workers: int = 0,
    timeout_s: float = 60.0,
    options: ParseOptions = DEFAULT_OPTIONS,
) -> Iterator[ParseOutcome]:
    """Parse ``(file, known_hash)`` pairs in ``workers`` processes; yield each as it finishes."""
    if not files:
        return
    from pebble import ProcessPool
    from pebble.common import ProcessExpired

    workers = workers or default_workers()
    in_flight = 4 * workers
    queue = list(reversed(files))
    pending: dict[Future[ParseOutcome], SourceFile] = {}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["connectors.parse_pool", "connectors.worker_main"])
    pool = ProcessPool(
        max_workers=min(workers, len(files)), context=context, initializer=inherit_logging, initargs=(logging_setup(),)
    )
    try:
        while queue or pending:
            while queue and len(pending) < in_flight:
                file, known = queue.pop()
                allowed = allowed_s(file, timeout_s)
                pending[pool.schedule(load, args=(file, known, options, allowed), timeout=allowed)] = file
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f].source):
                file = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    raise RaglineError(
                        "the parser worker processes could not start; a script that calls ragline must run "
                        'its code under `if __name__ == "__main__":` (a rule of Python\'s multiprocessing)'
                    ) from exc
                except TimeoutError:
                    yield ParseOutcome(
                        file,
                        error=f"parsing took longer than {allowed_s(file, timeout_s):g} s "
                        f"(source.parse_timeout_s = {timeout_s:g} per MB, at least that)",
                    )
                except ProcessExpired as exc:
                    yield ParseOutcome(file, error=f"the parser crashed (worker exit code {exc.exitcode})")
    finally:
        pool.stop()
        pool.join()
