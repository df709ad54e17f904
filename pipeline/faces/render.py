"""Readable terminal output for people; the JSON forms live with the data types."""

from __future__ import annotations

import textwrap
from typing import Any

from pipeline.app import Answer, SearchResponse
from pipeline.eval.evaluate import EvalReport
from pipeline.sync import SyncReport


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_sync_report(report: SyncReport) -> str:
    lines = [
        f"synced {report.root} in {report.seconds:.1f}s",
        f"  added {len(report.added)}, updated {len(report.updated)}, unchanged {report.unchanged}, "
        f"removed {len(report.removed)}, skipped {len(report.skipped)}; chunks written {report.chunks_written}",
    ]
    for skipped in report.skipped:
        lines.append(f"  skipped {skipped.source}: {skipped.reason}")
    if not report.changed:
        lines.append("  index is up to date: nothing changed")
    return "\n".join(lines)


def render_results(response: SearchResponse) -> str:
    lines = [f"notice: {n}" for n in response.notices]
    if not response.results:
        lines.append("no results")
    for rank, r in enumerate(response.results, start=1):
        s = r.scores()
        lines.append(
            f"{rank:>2}. {r.chunk.citation}\n"
            f"    dense {_fmt(s['dense'])}  bm25 {_fmt(s['bm25'])}  fused {_fmt(s['fused'])}  rerank {_fmt(s['rerank'])}"
        )
        snippet = " ".join(r.chunk.text.split())
        lines.append(textwrap.indent(textwrap.fill(textwrap.shorten(snippet, 400), 96), "    "))
    timings = ", ".join(f"{k} {v:.1f} ms" for k, v in response.timings_ms.items())
    lines.append(f"({'reranked' if response.reranked else 'not reranked'}; {timings})")
    return "\n".join(lines)


def answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        **answer.search.as_dict(),
        "prompt": answer.prompt.text,
        "prompt_tokens": answer.prompt.token_count,
        "sources": [
            {"number": b.number, "citation": b.citation, "chunk_ids": list(b.chunk_ids)} for b in answer.prompt.blocks
        ],
        "answer": answer.answer,
        "timings_ms": {k: round(v, 3) for k, v in answer.timings_ms.items()},
    }


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
    ]
    parts.append("")
    if answer.answer is not None:
        parts += ["== answer ==", answer.answer]
    elif not llm_configured:
        parts.append("(no LLM endpoint configured: set [llm] base_url and model to get an answer)")
    return "\n".join(parts)


def render_eval(report: EvalReport) -> str:
    index = "re-used" if report.indexing.chunks_written == 0 else f"built in {report.indexing.seconds:.1f}s"
    lines = [
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.documents} documents "
        f"as {report.units}; index {index} at {report.index}",
        f"{'mode':<15}{'nDCG@10':>9}{'R@100':>9}{'MRR@10':>9}{'p50 ms':>9}{'p95 ms':>9}",
    ]
    for mode, result in report.modes.items():
        m, total = result.metrics, result.latency_ms["total"]
        lines.append(
            f"{mode:<15}{m['ndcg@10']:>9.4f}{m['recall@100']:>9.4f}{m['mrr@10']:>9.4f}"
            f"{total['p50']:>9.1f}{total['p95']:>9.1f}"
        )
    return "\n".join(lines)
