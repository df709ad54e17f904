"""Every form a face shows: the JSON objects (CLI ``--json``, HTTP bodies) and the readable text.

One module, so the CLI and the HTTP API agree by construction: a response's JSON shape is written once.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing this module stays cheap for the CLI
    from pathlib import Path

    from pipeline.app import Answer, Moved, Prompt, SearchResponse, SyncReport, VerifyReport
    from pipeline.eval.evaluate import EvalReport, ModeResult
    from pipeline.eval.folder import FolderEvalReport
    from pipeline.faces.jobs import Job
    from pipeline.training.loop import TrainingReport
    from pipeline.types import ScoredChunk


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragline")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def rounded_ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


# -- JSON ------------------------------------------------------------------------------------------------
def sync_dict(report: SyncReport) -> dict[str, Any]:
    return {
        "root": report.root,
        "added": len(report.added),
        "updated": len(report.updated),
        "unchanged": report.unchanged,
        "removed": len(report.removed),
        "skipped": [{"source": s.source, "reason": s.reason} for s in report.skipped],
        "chunks_written": report.chunks_written,
        "backfilled": report.backfilled,
        "reused": len(report.reused),
        "moved_from": list(report.moved_from),
        "access_updated": list(report.access_updated),
        "notices": list(report.notices),
        "seconds": round(report.seconds, 3),
        "stages_s": {k: round(v, 3) for k, v in report.stages_s.items()},
        "changed": report.changed,
    }


def _confidence(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _copy_paths(result: ScoredChunk) -> list[str]:
    """The other files that hold the result's text, once each, in order (a paragraph repeated within the
    result's own file is no other place to look)."""
    return [path for path in dict.fromkeys(c.path for c in result.copies) if path != result.chunk.path]


def search_dict(response: SearchResponse) -> dict[str, Any]:
    return {
        "query": response.query,
        "results": [
            {
                "rank": rank,
                "chunk_id": r.chunk.id,
                "source": r.chunk.source,
                "root": r.chunk.root_label,
                "path": r.chunk.path,
                "page": r.chunk.page,
                "heading": " > ".join(r.chunk.heading) or None,
                "text": r.chunk.text,
                "scores": r.scores(),
                "highlights": [{"start": h.start, "end": h.end} for h in r.highlights],
                "copies": _copy_paths(r),
            }
            for rank, r in enumerate(response.results, start=1)
        ],
        "searched_query": response.searched_query or response.query,
        "confidence": _confidence(response.confidence),
        "low_confidence": response.low_confidence,
        "coverage": round(response.coverage, 4),
        "reranked": response.reranked,
        "notices": list(response.notices),
        "timings_ms": rounded_ms(response.timings_ms),
    }


def context_dict(query: str, prompt: Prompt, response: SearchResponse) -> dict[str, Any]:
    """Prompt-ready context: numbered, cited blocks within the token budget."""
    return {
        "query": query,
        "searched_query": response.searched_query or query,
        "context": "\n\n".join(b.render() for b in prompt.blocks),
        "prompt": prompt.text,
        "blocks": [
            {
                "number": b.number,
                "citation": b.citation,
                "source": b.source,
                "page": b.page,
                "heading": " > ".join(b.heading) or None,
                "text": b.text,
                "chunk_ids": list(b.chunk_ids),
                "pages": list(b.pages),
                "score": b.score,
            }
            for b in prompt.blocks
        ],
        "token_count": prompt.token_count,
        "budget": prompt.budget,
        "dropped_chunks": prompt.dropped_chunks,
        "note": prompt.note,
        "confidence": _confidence(response.confidence),
        "low_confidence": response.low_confidence,
        "timings_ms": rounded_ms(response.timings_ms),
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_sync_report(report: SyncReport) -> str:
    lines = [
        f"synced {report.root} in {report.seconds:.1f}s",
        f"  added {len(report.added)}, updated {len(report.updated)}, unchanged {report.unchanged}, "
        f"removed {len(report.removed)}, skipped {len(report.skipped)}; chunks written {report.chunks_written}",
    ]
    if report.backfilled:
        lines.append(f"  embedded {report.backfilled} chunks an interrupted sync had left searchable by BM25 only")
    for skipped in report.skipped:
        lines.append(f"  skipped {skipped.source}: {skipped.reason}")
    if report.reused:
        lines.append(f"  {len(report.reused)} added files copied from the same files under another root, not embedded")
    for folder in report.moved_from:
        lines.append(f"  {folder} is gone and its files are here: its documents now point to this folder")
    if report.access_updated:
        lines.append(f"  who may read {len(report.access_updated)} unchanged files changed: updated, not embedded")
    lines += [f"  notice: {notice}" for notice in report.notices]
    if not (report.changed or report.access_updated):
        lines.append("  index is up to date: nothing changed")
    return "\n".join(lines)


def verify_dict(report: VerifyReport) -> dict[str, Any]:
    """``ragline verify --json``."""

    def listed(found: Iterable[Any]) -> list[dict[str, str]]:
        return [{"kind": d.kind, "root": d.root, "source": d.source, "detail": d.detail} for d in found]

    data: dict[str, Any] = {
        "ok": report.ok,
        "roots": report.roots,
        "files": report.files,
        "documents": report.documents,
        "points": report.points,
        "not_indexable": report.not_indexable,
        "differences": listed(report.differences),
        "seconds": round(report.seconds, 3),
    }
    if report.repaired or report.before:
        data["before"] = listed(report.before)
        data["repaired"] = [
            {"root": r.root, "updated": len(r.updated), "added": len(r.added), "removed": len(r.removed)}
            | {"chunks_written": r.chunks_written, "access_updated": len(r.access_updated)}
            for r in report.repaired
        ]
    return data


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def render_verify(report: dict[str, Any], index: Path) -> str:
    """``ragline verify``: what was checked, each difference, and with --repair what was done."""
    counts = [_count(report["roots"], "folder"), *(_count(report[k], k[:-1]) for k in ("files", "documents", "points"))]
    lines = [f"verified {index}: {', '.join(counts)} in {report['seconds']:.1f}s"]
    if "before" in report:
        lines.append(f"  found {_count(len(report['before']), 'difference')}; repaired:")
        lines += [
            f"    {r['root']}: {_count(r['updated'] + r['added'], 'file')} written again "
            f"({_count(r['chunks_written'], 'chunk')}), {r['removed']} removed"
            + (f", readers of {r['access_updated']} updated" if r["access_updated"] else "")
            for r in report["repaired"]
        ]
    for d in report["differences"]:
        lines.append(f"  {d['kind']:<10} {d['root']}/{d['source']}".rstrip("/") + f": {d['detail']}")
    if report["ok"]:
        lines.append("  ok: the index matches its folders")
    else:
        left = _count(len(report["differences"]), "difference")
        lines.append(f"  {left}" + ("" if "before" in report else ": --repair re-syncs them"))
    return "\n".join(lines)


def render_access(found: dict[str, Any]) -> str:
    """``ragline access explain``: who may read a file, and why."""
    readers = ", ".join(found["readers"]) or "admins only"
    lines = [f"{found['path']}: {readers}"]
    if not found["enabled"]:
        lines.append("  access control is off ([access] enabled = false): every caller reads every document")
    lines += [f"  {reason}" for reason in found["reasons"]]
    lines.append(f"  {found['permissions']}")
    if found["admins"]:
        lines.append(f"  admins, who read everything: {', '.join(found['admins'])}")
    indexed = found["indexed"]
    if indexed is None:
        lines.append("  not in the index (or written with access control off): the next sync sets it")
    elif indexed != found["readers"]:
        lines.append(f"  the index still says {', '.join(indexed) or 'admins only'}: the next sync updates it")
    return "\n".join(lines)


def render_results(response: SearchResponse) -> str:
    """The ranked chunks; the response's notices are not part of them (the CLI writes them to stderr)."""
    lines: list[str] = []
    if not response.results:
        lines.append("no results")
    for rank, r in enumerate(response.results, start=1):
        s = r.scores()
        lines.append(
            f"{rank:>2}. {r.chunk.citation}\n"
            f"    dense {_fmt(s['dense'])}  bm25 {_fmt(s['bm25'])}  "
            f"fused {_fmt(s['fused'])}  rerank {_fmt(s['rerank'])}"
        )
        if copies := _copy_paths(r):
            lines.append(f"    also in: {', '.join(copies)}")
        snippet = " ".join(r.chunk.text.split())
        lines.append(textwrap.indent(textwrap.fill(textwrap.shorten(snippet, 400), 96), "    "))
    timings = ", ".join(f"{k} {v:.1f} ms" for k, v in response.timings_ms.items())
    if response.confidence is not None:
        low = ", LOW: the context may not hold the answer" if response.low_confidence else ""
        lines.append(f"confidence {response.confidence:.2f}{low}")
    lines.append(f"({'reranked' if response.reranked else 'not reranked'}; {timings})")
    return "\n".join(lines)


def sources_dict(prompt: Prompt, response: SearchResponse) -> dict[str, Any]:
    """An answer's search and prompt: what a streamed answer sends before its first token."""
    return {
        **search_dict(response),
        "prompt": prompt.text,
        "prompt_tokens": prompt.token_count,
        "sources": [
            {"number": b.number, "citation": b.citation, "chunk_ids": list(b.chunk_ids)} for b in prompt.blocks
        ],
        "dropped_chunks": prompt.dropped_chunks,
        "note": prompt.note,
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        **sources_dict(answer.prompt, answer.search),
        "answer": answer.answer,
        "timings_ms": rounded_ms(answer.timings_ms),
    }


def mode_dict(result: ModeResult, per_query: bool = False) -> dict[str, Any]:
    total = result.latency_ms["total"]
    return {
        **{k: round(v, 5) for k, v in result.metrics.items()},
        "latency_ms_p50": total["p50"],
        "latency_ms_p95": total["p95"],
        "stages_ms": result.latency_ms,
        **({"per_query": list(result.per_query)} if per_query else {}),
    }


def _missed_lines(modes: dict[str, ModeResult]) -> list[str]:
    """``eval --per-query`` in text: per mode, each query whose first result is not right, and what won."""
    lines = []
    for name, result in modes.items():
        missed = [q for q in result.per_query if q["rank"] != 1]
        lines.append(f"{name}: {len(missed)} of {len(result.per_query)} queries not right at rank 1")
        for q in missed:
            rank = f"rank {q['rank']}" if q["rank"] else "not in top 10"
            first = q["top"][0] if q["top"] else "nothing"
            lines.append(f"  {q['id']} ({rank}; first: {first}): {' '.join(str(q['query']).split())[:100]}")
    return lines


def _index_dict(index: Any, indexing: SyncReport) -> dict[str, Any]:
    return {
        "path": str(index),
        "reused": indexing.chunks_written == 0,
        "chunks_written": indexing.chunks_written,
        "seconds": round(indexing.seconds, 3),
    }


def eval_dict(report: EvalReport, per_query: bool = False) -> dict[str, Any]:
    return {
        "dataset": report.dataset,
        "split": report.split,
        "queries": report.queries,
        "modes": {name: mode_dict(result, per_query) for name, result in report.modes.items()},
        "documents": report.documents,
        "units": report.units,
        "index": {**_index_dict(report.index, report.indexing), "model": report.model},
        "tuning": report.tuning,
    }


def folder_eval_dict(report: FolderEvalReport, per_query: bool = False) -> dict[str, Any]:
    """``--folder``'s JSON, with ``--beir``'s conventions; each mode adds the rank of every question's first
    right file (null: not in the top 10), and with ``per_query`` each question's row."""
    return {
        "dataset": report.folder.name,
        "folder": str(report.folder),
        "queries_file": str(report.queries_file),
        "queries": len(report.queries),
        "modes": {
            name: {
                **mode_dict(result, per_query),
                "ranks": report.ranks[name],
                **({"section_ranks": report.section_ranks[name]} if report.section_ranks.get(name) else {}),
            }
            for name, result in report.modes.items()
        },
        "documents": report.documents,
        "units": "chunks",
        "index": {**_index_dict(report.index, report.indexing), "model": report.model},
        "tuning": report.tuning,
    }


def job_dict(job: Job) -> dict[str, Any]:
    """One ingest job, as GET /jobs/{id} reports it."""
    return {
        "id": job.id,
        "source": job.source,
        "status": job.status,
        "progress": {
            "phase": job.phase,
            "done": job.done,
            "total": job.total,
            "coverage": round(min(job.embedded / job.written, 1.0), 4) if job.written else None,
        },
        "summary": sync_dict(job.report) if job.report is not None else None,
        "error": job.error,
        "created": job.created,
        "finished": job.finished,
    }


def last_sync_dict(job: Job | None) -> dict[str, Any] | None:
    """The last ingest job that completed, for /stats."""
    if job is None or job.report is None:
        return None
    return {"job": job.id, "source": job.source, "finished": job.finished or time.time(), **sync_dict(job.report)}


def recorded_sync(held: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest sync the index records (one run by the CLI, say), for /stats when this server ran none."""
    import datetime

    synced = [r for r in held if r["last_sync"]]
    if not synced:
        return None
    latest = max(synced, key=lambda r: str(r["last_sync"]))
    when = datetime.datetime.fromisoformat(str(latest["last_sync"]).replace("Z", "+00:00"))
    return {"job": None, "source": latest["label"], "folder": latest["folder"], "finished": when.timestamp()}


def migrate_dict(moved: Moved) -> dict[str, Any]:
    return {"points": moved.points, "seconds": round(moved.seconds, 3), "source": moved.source, "target": moved.target}


def reindex_dict(moved: Moved) -> dict[str, Any]:
    return {"points": moved.points, "model": moved.model, "index": moved.target, "seconds": round(moved.seconds, 3)}


def training_dict(report: TrainingReport) -> dict[str, Any]:
    """The training report as its card (``ragline_training.json``) holds it."""
    return report.as_dict()


def render_answer(answer: Answer, llm_configured: bool) -> str:
    prompt = answer.prompt
    parts = [
        "== ranked chunks ==",
        render_results(answer.search),
        "",
        f"== prompt ({prompt.token_count} tokens, context budget {prompt.budget}) ==",
        prompt.text,
        "",
        "== sources ==",
        *(f"[{b.number}] {b.citation}" for b in prompt.blocks),
        *([f"({prompt.note})"] if prompt.note else []),
    ]
    parts.append("")
    if answer.answer is not None:
        parts += ["== answer ==", answer.answer]
    elif not llm_configured:
        parts.append("(no LLM endpoint configured: set [llm] base_url and model to get an answer)")
    return "\n".join(parts)


def _mode_table(modes: dict[str, ModeResult], columns: dict[str, str]) -> list[str]:
    """One row per mode: the metrics named by ``columns`` (header -> metric key), then p50 and p95 latency."""
    widths = [max(9, len(h) + 1) for h in columns]
    headers = zip([*columns, "p50 ms", "p95 ms"], [*widths, 9, 9], strict=True)
    lines = [f"{'mode':<15}" + "".join(f"{h:>{w}}" for h, w in headers)]
    for mode, result in modes.items():
        total = result.latency_ms["total"]
        values = "".join(
            f"{result.metrics[k]:>{w}.4f}" if k in result.metrics else f"{'-':>{w}}"
            for k, w in zip(columns.values(), widths, strict=True)
        )
        lines.append(f"{mode:<15}{values}{total['p50']:>9.1f}{total['p95']:>9.1f}")
    return lines


def _index_state(indexing: SyncReport) -> str:
    return "re-used" if indexing.chunks_written == 0 else f"built in {indexing.seconds:.1f}s"


def render_eval(report: EvalReport, per_query: bool = False) -> str:
    heading = (
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.documents} documents "
        f"as {report.units}; index {_index_state(report.indexing)} at {report.index}"
    )
    columns = {"nDCG@10": "ndcg@10", "R@100": "recall@100", "MRR@10": "mrr@10", "conf AUC": "confidence_auc"}
    missed = _missed_lines(report.modes) if per_query else []
    return "\n".join([heading, *_mode_table(report.modes, columns), *_tuning_lines(report.tuning), *missed])


def render_folder_eval(report: FolderEvalReport, per_query: bool = False) -> str:
    heading = (
        f"{report.folder} ({report.queries_file.name}): {len(report.queries)} questions, {report.documents} files; "
        f"index {_index_state(report.indexing)} at {report.index}"
    )
    columns = {"S@1": "success@1", "S@5": "success@5", "MRR@10": "mrr@10"}
    if any(report.section_ranks.values()):
        columns.update({"place S@1": "section_success@1", "place MRR@10": "section_mrr@10"})
    columns["conf AUC"] = "confidence_auc"
    missed = _missed_lines(report.modes) if per_query else []
    return "\n".join([heading, *_mode_table(report.modes, columns), *_tuning_lines(report.tuning), *missed])


def _tuning_lines(tuning: dict[str, Any] | None) -> list[str]:
    if not tuning:
        return []
    if "not_tuned" in tuning:
        return [f"not tuned: {tuning['not_tuned']}"]
    return ["tuning of the index:", *("  " + line for line in render_tune(tuning).splitlines())]


def render_stats(stats: dict[str, Any]) -> str:
    lines = [f"{key:>10}: {value}" for key, value in stats.items() if key != "roots"]
    held = stats.get("roots") or []
    lines.append(f"{'roots':>10}: {len(held)}")
    lines.extend(f"            {line}" for line in _root_lines(held))
    return "\n".join(lines)


def render_sources(held: list[dict[str, Any]]) -> str:
    """``ragline sources``: one line per folder the index holds."""
    return "\n".join(_root_lines(held)) if held else "the index holds no folder yet"


def render_removed(gone: list[str]) -> str:
    return "\n".join([f"removed {len(gone)} documents from the index:"] + [f"  {source}" for source in gone])


def _root_lines(held: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['label']}: {r['folder']}, {r['documents']} documents, {r['chunks']} chunks, "
        f"last sync {r['last_sync'] or 'unknown'}" + ("" if r["present"] else " (folder missing)")
        for r in held
    ]


def render_migrate(moved: Moved) -> str:
    return f"copied {moved.points} points from {moved.source} to {moved.target} in {moved.seconds:.1f} s"


def render_reindex(moved: Moved) -> str:
    return f"re-embedded {moved.points} chunks of {moved.target} with {moved.model} in {round(moved.seconds, 3):.1f} s"


def render_training(report: TrainingReport) -> str:
    best = report.best
    lines = [
        f"trained {report.kind} in {report.seconds / 60:.1f} min ({report.steps} steps, "
        f"{report.train_examples} examples); best validation nDCG@10 {best.get('ndcg@10', 0):.4f} "
        f"at step {best.get('step', 0):.0f}; saved to {report.out}"
    ]
    lines.extend(f"  {note}" for note in report.notes)
    return "\n".join(lines)


def render_tune(tuning: dict[str, Any]) -> str:
    """What ``ragline tune`` asked, how the current and the best settings scored, and what it kept."""
    asked = ", ".join(f"{n} {kind}" for kind, n in sorted(tuning["questions"].items()))
    default, best = tuning["default"], tuning["best"]
    lines = [
        f"asked {asked} pseudo-questions of {tuning['chunks']} chunks; "
        f"tried {tuning['settings_tried']} settings in {tuning['seconds']:.0f}s",
        "  MRR@10 " + ", ".join(f"{k} {default[k]:.3f} -> {best.get(k, 0):.3f}" for k in sorted(default)),
    ]
    settings = ", ".join(f"{k} = {v}" for k, v in sorted(tuning["best_settings"].items()))
    if tuning["settings"]:
        lines.append(f"  kept (+{tuning['gain']:.3f} MRR@10 on sentences): {settings}")
    else:
        lines.append(
            f"  the current settings hold (the best gains {tuning['gain']:.3f} < {tuning['min_gain']}): kept none"
        )
    return "\n".join(lines)


def render_adapt(report: dict[str, Any]) -> str:
    """What ``ragline adapt`` trained on, how validation moved, and which model the index uses now."""
    pairs = ", ".join(f"{n} {kind}" for kind, n in sorted(report["pairs"].items()))
    lines = [
        f"mined {pairs} pairs; trained on {report['train_pairs']}, validated on {report['validation_pairs']}"
        + (f" and {report['real_questions']} real questions" if report["real_questions"] else "")
        + f"; {report['steps']} steps in {report['seconds']:.0f}s",
    ]
    checks = report["validation"]
    if checks:
        first, best = checks[0], max(checks, key=lambda c: c["score"])
        names = [k for k in first if k not in ("step", "score")]
        lines.append("  validation " + ", ".join(f"{k} {first[k]:.3f} -> {best[k]:.3f}" for k in names))
    if report["adapted"]:
        lines.append(
            f"  re-embedded {report['points']} chunks in {report['reembed_seconds']:.0f}s: "
            f"the index now uses {report['model']}"
        )
    lines += [f"  {note}" for note in report["notes"]]
    return "\n".join(lines)
