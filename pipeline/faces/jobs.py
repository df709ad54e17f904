"""Ingest jobs for the HTTP API: syncs of one index run one at a time, on one worker thread."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from pipeline.app import Ragline, SyncReport
from pipeline.errors import RaglineError


@dataclass
class Job:
    """One ingest run: its progress as it goes, then its report or its error."""

    id: str
    source: str
    status: Literal["queued", "running", "done", "failed"] = "queued"
    phase: str | None = None
    done: int = 0
    total: int = 0
    written: int = 0
    """Chunks written so far (BM25 finds them)."""
    embedded: int = 0
    """Of those, the ones with their dense vectors stored."""
    report: SyncReport | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None


class Jobs:
    """Ingest jobs run one at a time on one worker thread: syncs of one index never overlap."""

    def __init__(self, rag: Ragline) -> None:
        self._rag = rag
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragline-ingest")
        self.last_done: Job | None = None

    def submit(self, source: str, folder: str) -> Job:
        job = Job(id=uuid.uuid4().hex, source=source)
        self._jobs[job.id] = job
        self._pool.submit(self._run, job, folder)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        """Newest first."""
        return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def _run(self, job: Job, folder: str) -> None:
        job.status = "running"

        def progress(phase: str, done: int, total: int) -> None:
            job.phase, job.done, job.total = phase, done, total
            if phase == "writing":
                job.written = done
            elif phase == "embedding":
                job.embedded = done

        try:
            report = self._rag.ingest(folder, progress=progress)
        except Exception as exc:  # noqa: BLE001 - reported on the job; the server goes on
            job.status, job.error = "failed", str(exc) if isinstance(exc, RaglineError) else repr(exc)
        else:
            job.report, job.finished, job.status = report, time.time(), "done"
            self.last_done = job
        job.finished = job.finished or time.time()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
