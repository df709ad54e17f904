"""The ``ragline`` command: a thin click shell over :class:`pipeline.app.Ragline`.

Every failure is one line on stderr, ``error: ...``, with no traceback. Exit codes (scripts rely on them):
0 done; 1 an error in what the command was given or met (a missing folder or config, an index that is a
file, an unreadable file); 2 the command line itself is wrong (an unknown option, a missing argument);
3 ``ingest --strict`` skipped a file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from pipeline.config import Fusion, load_config, with_index
from pipeline.errors import RaglineError
from pipeline.faces import render

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR, EXIT_USAGE, EXIT_SKIPPED = 1, 2, 3


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"error: {one_line}", err=True)
    sys.exit(code)


def _usage(exc: click.UsageError) -> None:
    command = exc.ctx.command_path if exc.ctx is not None else "ragline"
    _fail(f"{exc.format_message()} (see {command} --help)", EXIT_USAGE)


class _Group(click.Group):
    """Turns domain errors into one line and exit code 1, and usage errors into one line and exit code 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            _usage(exc)
            raise  # unreachable: _usage exits

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage(exc)
        except RaglineError as exc:
            _fail(str(exc))
        except OSError as exc:  # the disk, a file or the network, outside what the domain errors name
            _fail(str(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.option("--index", "index", envvar="RAGLINE_INDEX", help="Index folder (env RAGLINE_INDEX).")
@click.option("--config", "config_file", envvar="RAGLINE_CONFIG", help="TOML config file (env RAGLINE_CONFIG).")
@click.option(
    "--qdrant-url",
    envvar="RAGLINE_QDRANT_URL",
    default=None,
    help="Use this Qdrant server or cluster instead of the embedded index (env RAGLINE_QDRANT_URL).",
)
@click.option(
    "--untuned",
    is_flag=True,
    help="Rank with the config's settings alone, not those `ragline tune` saved with the index.",
)
@click.option("-v", "--verbose", count=True, help="Log more on stderr: -v info, -vv debug (parser warnings included).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log level on stderr (default: warning, with the PDF and Office parsers' warnings left out).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or one JSON object per line (serve: uvicorn's lines too).",
)
@click.version_option(package_name="ragline")
@click.pass_context
def main(
    ctx: click.Context,
    index: str | None,
    config_file: str | None,
    qdrant_url: str | None,
    untuned: bool,
    verbose: int,
    log_level: str | None,
    log_format: str,
) -> None:
    """ragline: hybrid (BM25 + dense) retrieval with citations, on Qdrant."""
    import contextlib
    import signal

    # Over a file size limit (ulimit -f) a write then fails with EFBIG, reported in one line,
    # instead of SIGXFSZ killing the process without a word (PostgreSQL does the same).
    with contextlib.suppress(ValueError):  # ValueError: not the main thread (an embedding program)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    from pipeline.app import Ragline

    _setup_logging(verbose, log_level, log_format == "json")
    config = load_config(config_file)
    if index:
        config = with_index(config, index)
    if qdrant_url:
        config = config.model_copy(update={"qdrant": config.qdrant.model_copy(update={"url": qdrant_url})})
    if untuned:
        config = config.model_copy(update={"retrieval": config.retrieval.model_copy(update={"tuned": False})})
    app = Ragline(config)
    ctx.obj = app
    ctx.call_on_close(lambda: _close(app))


PARSER_LOGGERS = ("pypdf", "fontTools", "PIL", "docx", "pptx")
"""Parser libraries that log a warning per oddity in a file (pypdf: one per unusual font, 57 lines on the
sample documents); the sync report already names a file that could not be read, and why."""


def _setup_logging(verbose: int, log_level: str | None, json_lines: bool = False) -> None:
    """Log to stderr at the level asked; the parser worker processes take the same setup (connectors.parse_pool)."""
    import logging

    from pipeline.faces import logs

    level = (log_level or {0: "warning", 1: "info"}.get(verbose, "debug")).upper()
    logs.setup(level, json_lines)
    if log_level is None and not verbose:
        for name in PARSER_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def _close(app: Any) -> None:
    """Close the index; a failure to save it is one line too, unless the command already failed with its own."""
    failing = sys.exc_info()[1] is not None
    try:
        app.close()
    except RaglineError as exc:
        if not failing:
            _fail(str(exc))


def _search_options(func: F) -> F:
    options = [
        click.option("--top-k", "-k", type=click.IntRange(1, 1000), default=None, help="Results to return."),
        click.option("--fusion", type=click.Choice([f.value for f in Fusion]), default=None, help="Fusion method."),
        click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True),
        click.option("--rerank/--no-rerank", default=None, help="Rerank with the cross-encoder (default: config)."),
        click.option(
            "--path",
            "path",
            default=None,
            help="Only sources under this folder or file, or matching this glob: teamA/, ./faq.txt, '**/*.pdf'.",
        ),
        click.option("--type", "file_types", multiple=True, help="Only these file types: pdf,md (or repeat it)."),
        click.option(
            "--where",
            "fields",
            multiple=True,
            help="Payload field equals a value, key=value, e.g. page_start=4 (repeatable; fields: docs/filters.md).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]
    for option in reversed(options):
        func = option(func)
    return _reader_options(func)


def _reader_options(func: F) -> F:
    """``--as`` and ``--group``: run the command as that caller would, with access control on."""
    func = click.option(
        "--group", "groups", multiple=True, help="With --as: a group the caller belongs to (repeatable)."
    )(func)
    return click.option(
        "--as",
        "as_user",
        default=None,
        metavar="user:NAME",
        help="Show what this caller would get, as [access] rules allow it (default: local admin, sees everything).",
    )(func)


def _reader(app: Any, as_user: str | None, groups: tuple[str, ...]) -> Any:
    """The reader ``--as`` and ``--group`` name; the local admin without them."""
    from pipeline.access import ADMIN, Reader

    if as_user is None and not groups:
        return ADMIN
    if as_user is not None and not as_user.startswith("user:"):
        raise click.BadParameter(f"{as_user!r}: give user:NAME (groups with --group)", param_hint="--as")
    if not app.config.access.enabled:
        _notify(["access control is off ([access] enabled = false): every caller sees everything"])
    user = as_user.removeprefix("user:") if as_user else None
    return Reader.person(user, groups, app.config.access.admins)


def _search_args(
    app: Any,
    top_k: int | None,
    fusion: str | None,
    mode: str,
    rerank: bool | None,
    path: str | None,
    file_types: tuple[str, ...],
    fields: tuple[str, ...],
    as_user: str | None,
    groups: tuple[str, ...],
) -> dict[str, Any]:
    from pipeline.filters import parse_filter

    return {
        "top_k": top_k,
        "fusion": Fusion(fusion) if fusion else None,
        "mode": mode,
        "rerank": rerank,
        "where": parse_filter(app.label_path(path) if path else None, file_types, fields),
        "reader": _reader(app, as_user, groups),
    }


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


class _LogProgress:
    """One stderr line per step ("parsing 12/200"), for logs where bars would be noise."""

    def __init__(self) -> None:
        self._done: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._done.get(phase) != done:
            self._done[phase] = done
            click.echo(f"{phase} {done}/{total}", err=True)


@main.command()
@click.argument("path")
@click.option("--strict", is_flag=True, help="Exit 3 if any file was skipped.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Let a folder with no file left remove all its documents (without it, that sync is refused).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "log", "none"]),
    default="auto",
    show_default=True,
    help="Progress on stderr: bars (auto: when stderr is a terminal), or one line per step for logs.",
)
@click.pass_obj
def ingest(app: Any, path: str, strict: bool, allow_empty: bool, as_json: bool, progress: str) -> None:
    """Sync a folder into the index: add new, update changed, remove deleted files.

    PATH may also be one file: it is synced into the indexed folder that holds it (else its own folder),
    and nothing else changes. A folder whose files all vanished (an unmounted share) is refused unless
    --allow-empty; a folder moved elsewhere is recognised by its files' contents and not embedded again.
    """
    shown: Any = (
        _LogProgress() if progress == "log" else {"auto": _progress_enabled(), "bar": True}.get(progress, False)
    )
    report = app.ingest(path, progress=shown, allow_empty=allow_empty)
    if as_json:
        click.echo(json.dumps(render.sync_dict(report), ensure_ascii=False))
    else:
        click.echo(render.render_sync_report(report))
    if strict and report.skipped:
        sys.exit(EXIT_SKIPPED)


_notified: set[str] = set()


def _notify(notices: Iterable[str]) -> None:
    """A notice (the reranker cannot be loaded, ...) goes to stderr, once per process: stdout stays the answer."""
    for notice in notices:
        if notice not in _notified:
            _notified.add(notice)
            click.echo(f"notice: {notice}", err=True)


@main.command()
@click.argument("query")
@_search_options
@click.pass_obj
def search(app: Any, query: str, as_json: bool, **kwargs: Any) -> None:
    """Hybrid search: ranked chunks with citations and per-stage scores."""
    response = app.search(query, **_search_args(app, **kwargs))
    if as_json:
        click.echo(json.dumps(render.search_dict(response), ensure_ascii=False))
    else:
        _notify(response.notices)
        click.echo(render.render_results(response))


@main.command()
@click.argument("question")
@_search_options
@click.option("--budget", type=click.IntRange(32, 1_000_000), default=None, help="Context token budget.")
@click.option(
    "--stream",
    is_flag=True,
    help="Print the answer's tokens as the LLM sends them (with --json: one JSON event per line: "
    "sources, token..., done).",
)
@click.pass_obj
def ask(app: Any, question: str, as_json: bool, budget: int | None, stream: bool, **kwargs: Any) -> None:
    """Retrieve, build the cited prompt, and answer if an LLM endpoint is configured."""
    if stream and app.config.llm.configured:
        _ask_streamed(app, question, as_json, budget, **kwargs)
        return
    result = app.ask(question, budget=budget, **_search_args(app, **kwargs))
    if as_json:
        click.echo(json.dumps(render.answer_dict(result), ensure_ascii=False))
    else:
        _notify(result.search.notices)
        click.echo(render.render_answer(result, llm_configured=app.config.llm.configured))


def _ask_streamed(app: Any, question: str, as_json: bool, budget: int | None, **kwargs: Any) -> None:
    """``ask --stream``: the sources first, then each token as it comes (flushed), then the timings."""
    from pipeline.app import Answer

    prompt, response = app.context(question, budget, **_search_args(app, **kwargs))
    if as_json:
        click.echo(json.dumps({"event": "sources", **render.sources_dict(prompt, response)}, ensure_ascii=False))
    else:
        _notify(response.notices)
        click.echo(render.render_answer(Answer(response, prompt), llm_configured=True) + "== answer ==")
    parts: list[str] = []
    started = time.perf_counter()
    for token in app.answer_tokens(prompt):
        parts.append(token)
        click.echo(json.dumps({"event": "token", "text": token}) if as_json else token, nl=as_json)
        sys.stdout.flush()
    timings = {**response.timings_ms, "llm": (time.perf_counter() - started) * 1e3}
    if as_json:
        done = {"event": "done", "answer": "".join(parts), "timings_ms": render.rounded_ms(timings)}
        click.echo(json.dumps(done, ensure_ascii=False))
    else:
        click.echo()


@main.command()
@click.option(
    "--budget-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Wall-clock time for mining and training (re-embedding the index comes after).",
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for the adapted model.")
@click.option(
    "--queries", type=click.Path(exists=True, dir_okay=False), default=None, help="Real questions to validate on."
)
@click.option("--continue", "resume", is_flag=True, help="Start from the index's adapted model, not its base.")
@click.option(
    "--pairs",
    "kinds",
    type=click.Choice(["heading", "sentence"]),
    multiple=True,
    help="Pair kinds to train on, repeatable (default: heading; sentence adds inverse-cloze pairs).",
)
@click.option(
    "--hard-negatives", type=click.IntRange(0, 16), default=None, help="Mined negatives per pair (default 0)."
)
@click.option(
    "--max-p",
    type=click.FloatRange(0, 1),
    default=None,
    help="Keep the adapted model only if its validation gain has paired-bootstrap p at most this (default 0.05).",
)
@click.option("--epochs", type=click.IntRange(1, 100), default=None, help="Passes over the pairs (default 1).")
@click.option("--patience", type=click.IntRange(1, 100), default=None, help="Checks with no gain before stopping.")
@click.option("--batch-size", type=click.IntRange(2, 4096), default=None)
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--max-length", "max_seq_length", type=click.IntRange(16, 8192), default=None, help="Tokens per input.")
@click.option("--seed", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def adapt(app: Any, out: str | None, queries: str | None, as_json: bool, **options: Any) -> None:
    """Fit the embedder to this index's own documents with no labels, and re-embed the index with it.

    Trains on pairs the stored chunks hold (a heading or title and its section; with --pairs sentence, also
    a sentence and the rest of its window), optionally each with hard negatives the index's hybrid search
    finds in other documents, within the time budget. The adapted model is kept only if it beats the base
    model on pairs of documents held out (and on --queries, a TSV in the format of eval --folder); then the
    index is re-embedded into a new folder that replaces it whole, and search uses the adapted model unless
    the config names another embedder.
    """
    from pipeline.training.adapt import AdaptSettings
    from pipeline.training.adapt import adapt as adapt_index

    options["kinds"] = tuple(options["kinds"]) or None
    report = adapt_index(app, _settings(AdaptSettings, **options), out, queries, _progress_enabled())
    click.echo(json.dumps(report.as_dict()) if as_json else render.render_adapt(report.as_dict()))


@main.command()
@click.option(
    "--questions", type=click.IntRange(20, 5000), default=300, show_default=True, help="Pseudo-questions to ask."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which chunks the questions are drawn from.")
@click.option("--reset", is_flag=True, help="Forget the settings an earlier tune saved, and tune nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def tune(app: Any, questions: int, seed: int, reset: bool, as_json: bool) -> None:
    """Fit the ranking settings to this index with no labels, and save them with it.

    Asks the index questions it knows the answers to (headings that name one document; sentences taken out
    of a chunk, the windows holding them hidden, or in a one-window document the window scored without
    them), scores a grid of fusion, weight, depth and document-evidence
    settings on them, and keeps the one best on sentences that loses nothing on headings, if it gains 0.01
    MRR@10 in 95% of bootstrap resamples. Search then uses it for each setting the config does not set;
    --untuned ignores it.
    """
    if reset:
        app.store().save_tuning(None)
        click.echo(json.dumps({"reset": True}) if as_json else "tuned settings forgotten: the config's apply")
        return
    from pipeline.eval.tune import tune as tune_index

    report = tune_index(app, questions, seed, _progress_enabled())
    click.echo(json.dumps(report.as_dict()) if as_json else render.render_tune(report.as_dict()))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_reader_options
@click.pass_obj
def sources(app: Any, as_json: bool, as_user: str | None, groups: tuple[str, ...]) -> None:
    """The folders the index holds: label (what citations and --path start with), folder, documents, chunks,
    last sync."""
    held = app.sources(_reader(app, as_user, groups))
    click.echo(json.dumps({"sources": held}) if as_json else render.render_sources(held))


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def remove(app: Any, target: str, as_json: bool) -> None:
    """Remove a folder's documents from the index (the files stay on disk).

    TARGET is a label from `ragline sources`, an indexed folder, or a file or folder under one
    (teamA/notes.md, ./docs/old). A whole folder also leaves `ragline sources`.
    """
    gone = app.remove(target)
    click.echo(json.dumps({"removed": gone}) if as_json else render.render_removed(gone))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_reader_options
@click.pass_obj
def stats(app: Any, as_json: bool, as_user: str | None, groups: tuple[str, ...]) -> None:
    """What the index holds: documents, chunks, model, store."""
    data = app.stats(_reader(app, as_user, groups))
    click.echo(json.dumps(data) if as_json else render.render_stats(data))


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--quiet-ms",
    type=click.IntRange(10, 60_000),
    default=None,
    help="A burst of changes ends (and its one sync starts) after this long with no new change (default 300).",
)
@click.pass_obj
def watch(app: Any, paths: tuple[str, ...], quiet_ms: int | None) -> None:
    """Keep the index in step with folders: sync each now, then whatever changes in them, until Ctrl-C.

    A stopped or killed watcher catches up at its next start. Bursts of changes (a copy of many files) are
    one sync; renames and deletes are followed. `ragline serve` does the same with [server] watch = true.
    """
    import signal
    import threading
    import time
    from pathlib import Path

    from pipeline.faces.watcher import Watcher

    folders: list[str | Path] = []
    for path in paths:
        if not Path(path).expanduser().is_dir():
            raise RaglineError(f"cannot watch {path!r}: not a folder")
        folders.append(path)

    def synced(folder: str, report: Any) -> None:
        if report.changed or report.access_updated:
            first = render.render_sync_report(report).splitlines()
            click.echo(f"{time.strftime('%H:%M:%S')} {first[0]}: {first[1].strip()}")

    quiet = quiet_ms or app.config.server.watch_quiet_ms
    watcher = Watcher(app, folders, quiet, on_sync=synced).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    click.echo(f"watching {', '.join(watcher.status.folders)} (Ctrl-C to stop)", err=True)
    try:
        while not done.wait(0.5) and watcher.status.state != "failed":
            pass
    except KeyboardInterrupt:
        pass
    watcher.stop()
    if watcher.status.state == "failed":
        raise RaglineError(f"the watcher stopped: {watcher.status.last_error}")
    click.echo("stopped", err=True)


@main.command()
@click.option("--repair", is_flag=True, help="Re-sync exactly the files that differ, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def verify(app: Any, repair: bool, as_json: bool) -> None:
    """Prove the index matches its folders: every file indexed with its current content, its chunks whole
    (count, ids), no orphan points, both vectors on every point, BM25 weights consistent, readers current.

    Exit 0 when all hold; 1 with each difference otherwise (after --repair: what is left).
    """
    report = app.verify(repair)
    found = render.verify_dict(report)
    click.echo(json.dumps(found) if as_json else render.render_verify(found, app.index_path))
    if not report.ok:
        sys.exit(EXIT_ERROR)


@main.group(cls=_Group)
def access() -> None:
    """Who may read what: explain a file's readers, make API keys ([access] in the config; docs/access.md)."""


@access.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def explain(app: Any, path: str, as_json: bool) -> None:
    """Who may read the file PATH, by which rule and which permissions, and what the index says now."""
    found = app.explain_access(path)
    click.echo(json.dumps(found) if as_json else render.render_access(found))


@access.command()
@click.argument("name")
@click.option(
    "--principal",
    "principals",
    multiple=True,
    help="What the key may read: user:NAME, group:NAME or everyone (repeatable); admins are [access] admins.",
)
def key(name: str, principals: tuple[str, ...]) -> None:
    """Make a new API key for the HTTP API: prints the key (once: only its hash goes in the config) and the
    [[access.keys]] entry to add to the config."""
    import secrets

    from pipeline.access import principal
    from pipeline.faces.identity import key_hash

    held = [principal(p) for p in principals]
    secret = "rl_" + secrets.token_urlsafe(32)
    click.echo(f"key (give it to the caller; it is not stored anywhere): {secret}", err=True)
    click.echo("[[access.keys]]")
    click.echo(f"name = {json.dumps(name)}")
    click.echo(f'sha256 = "{key_hash(secret)}"')
    click.echo(f"principals = {json.dumps(held)}")


@main.command()
@_reader_options
@click.pass_obj
def mcp(app: Any, as_user: str | None, groups: tuple[str, ...]) -> None:
    """Serve the index to an MCP client (Claude Desktop, an IDE, an agent) over stdio: the tools search,
    get_context, ask (with an LLM configured) and list_sources. `ragline serve` answers MCP at /mcp too.

    \b
    Client config: {"mcpServers": {"ragline": {"command": "ragline",
                    "args": ["--index", "/path/to/index", "mcp"]}}}
    """
    from pipeline.faces.mcp import stdio

    app.warm_up()  # the model loads before the client's first call, not during it
    stdio(app, _reader(app, as_user, groups))


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default: [server] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: [server] port, 8000).")
@click.pass_obj
def serve(app: Any, host: str | None, port: int | None) -> None:
    """Run the HTTP API (FastAPI + uvicorn) on this index; OpenAPI docs at /docs."""
    from pipeline.faces.http import serve as run_server

    run_server(app, host or app.config.server.host, port or app.config.server.port)


@main.command(name="eval")
@click.option("--beir", "beir", type=click.Path(exists=True, file_okay=False), help="BEIR-format folder.")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False),
    help="A folder of documents, indexed through the normal sync (with --queries).",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False),
    help="With --folder: TSV of qid, question, right file stems (a|b); scored at file level.",
)
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to evaluate (--beir).")
@click.option(
    "--modes",
    default="bm25,dense,hybrid",
    show_default=True,
    help="Comma-separated: bm25, dense, hybrid, hybrid+rerank.",
)
@click.option(
    "--units",
    type=click.Choice(["documents", "chunks"]),
    default="documents",
    show_default=True,
    help="Index whole documents (BEIR protocol) or chunks (a document ranks by its best chunk); --beir only.",
)
@click.option(
    "--eval-index",
    type=click.Path(file_okay=False),
    default=None,
    help="Index folder for the corpus (default: a cache folder named by corpus and settings, re-used).",
)
@click.option("--embedder", default=None, help="Evaluate with this embedder (e.g. a train-embedder folder).")
@click.option(
    "--reranker", default=None, help="Rerank with this model in hybrid+rerank (e.g. a train-reranker folder)."
)
@click.option(
    "--tune",
    "tune_first",
    is_flag=True,
    help="Run `ragline tune` on the evaluation's index first, and measure each mode untuned and tuned (MODE@tuned).",
)
@click.option(
    "--per-query",
    is_flag=True,
    help="Also each query's result: its rank and scores, what ranked first (text: the queries not right at 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def eval_command(
    app: Any,
    beir: str | None,
    folder: str | None,
    queries: str | None,
    split: str,
    modes: str,
    units: str,
    eval_index: str | None,
    embedder: str | None,
    reranker: str | None,
    tune_first: bool,
    per_query: bool,
    as_json: bool,
) -> None:
    """Measure a BEIR dataset (nDCG@10, Recall@100, MRR@10) or a folder with questions (file-level Success@1,
    Success@5, MRR@10, each question's rank), with latency.

    \b
    Examples:
      ragline eval --beir ../shared/datasets/scifact --split test
      ragline eval --folder ~/docs --queries questions.tsv --modes bm25,hybrid --json
    """
    from pipeline.eval.evaluate import evaluate_beir, parse_modes

    if (beir is None) == (folder is None):
        raise click.UsageError("give one of --beir DIR or --folder DIR")
    if folder is not None:
        from pipeline.eval.folder import evaluate_folder

        if queries is None:
            raise click.UsageError("--folder needs --queries FILE.tsv")
        config = _with_models(app.config, embedder, reranker)
        found = evaluate_folder(
            folder, queries, config, parse_modes(modes), eval_index, _progress_enabled(), tune_first
        )
        click.echo(
            json.dumps(render.folder_eval_dict(found, per_query))
            if as_json
            else render.render_folder_eval(found, per_query)
        )
        return
    assert beir is not None
    report = evaluate_beir(
        beir,
        _with_models(app.config, embedder, reranker),
        split,
        parse_modes(modes),
        "chunks" if units == "chunks" else "documents",
        eval_index,
        progress=_progress_enabled(),
        tune=tune_first,
    )
    click.echo(json.dumps(render.eval_dict(report, per_query)) if as_json else render.render_eval(report, per_query))


@main.command()
@click.option("--to", "url", required=True, help="Qdrant server URL to copy the index to, e.g. http://localhost:6333.")
@click.option("--collection", default=None, help="Target collection (default: [qdrant] collection).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def migrate(app: Any, url: str, collection: str | None, as_json: bool) -> None:
    """Copy the embedded index (--index) into an empty collection on a Qdrant server, without re-embedding."""
    moved = app.migrate(url, collection, progress=_progress_enabled())
    click.echo(json.dumps(render.migrate_dict(moved)) if as_json else render.render_migrate(moved))


def _with_models(config: Any, embedder: str | None, reranker: str | None) -> Any:
    """The config with another embedder and/or reranker (a fine-tuned model folder, say)."""
    update: dict[str, Any] = {}
    if embedder:
        update["embedding"] = config.embedding.model_copy(update={"model": embedder})
    if reranker:
        update["rerank"] = config.rerank.model_copy(update={"model": reranker})
    return config.model_copy(update=update)


@main.command()
@click.option("--embedder", required=True, help="The new embedder (a model folder, e.g. from train-embedder).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def reindex(app: Any, embedder: str, as_json: bool) -> None:
    """Re-embed the embedded index's stored chunks with another embedder (no file is parsed again)."""
    moved = app.reindex(embedder, progress=_progress_enabled())
    click.echo(json.dumps(render.reindex_dict(moved)) if as_json else render.render_reindex(moved))


def _training_input(func: F) -> F:
    options = [
        click.option("--beir", type=click.Path(exists=True, file_okay=False), default=None, help="BEIR-format folder."),
        click.option(
            "--pairs",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help='JSONL of {"query", "positive", "negatives"?} (instead of --beir).',
        ),
        click.option("--split", default="train", show_default=True, help="qrels split to train on (never test)."),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the trained model."),
        click.option("--epochs", type=click.IntRange(1, 100), default=None, help="Passes over the data."),
        click.option("--batch-size", type=click.IntRange(2, 4096), default=None),
        click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--max-length", type=click.IntRange(16, 8192), default=None, help="Tokens per input."),
        click.option("--seed", type=int, default=None),
        click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(cls: Any, **given: Any) -> Any:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in given.items() if v is not None and k in names})


def _print_report(report: Any, as_json: bool) -> None:
    click.echo(json.dumps(render.training_dict(report)) if as_json else render.render_training(report))


@main.command(name="train-embedder")
@_training_input
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None, help="InfoNCE temperature.")
@click.option("--hard-negatives", type=click.IntRange(0, 16), default=None, help="Mined negatives per pair.")
@click.pass_obj
def train_embedder_command(
    app: Any,
    beir: str | None,
    pairs: str | None,
    split: str,
    out: str,
    as_json: bool,
    max_length: int | None,
    **options: Any,
) -> None:
    """Fine-tune the configured embedder (InfoNCE, in-batch + mined hard negatives)."""
    from pipeline.training.embedder import EmbedderTraining
    from pipeline.training.run import embedder_command

    settings = _settings(EmbedderTraining, max_seq_length=max_length, **options)
    report = embedder_command(app.config, out, beir, pairs, split, settings, _progress_enabled())
    _print_report(report, as_json)


@main.command(name="train-reranker")
@_training_input
@click.option("--negatives", type=click.IntRange(1, 64), default=None, help="Mined negatives per positive.")
@click.option("--embedder", default=None, help="Embedder whose hybrid candidates are mined (default: configured).")
@click.option("--base", "base_model", default=None, help="Start from this model (default: packaged MiniLM + new head).")
@click.pass_obj
def train_reranker_command(
    app: Any,
    beir: str | None,
    pairs: str | None,
    split: str,
    out: str,
    as_json: bool,
    embedder: str | None,
    base_model: str | None,
    **options: Any,
) -> None:
    """Train a cross-encoder reranker listwise on mined hybrid candidates."""
    from pipeline.config import DEFAULT_EMBEDDER
    from pipeline.training.reranker import RerankerTraining
    from pipeline.training.run import reranker_command

    config = _with_models(app.config, embedder, None)
    settings = _settings(RerankerTraining, **options)
    report = reranker_command(
        config, out, beir, pairs, split, settings, base_model or DEFAULT_EMBEDDER, _progress_enabled()
    )
    _print_report(report, as_json)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="ragline")
