"""Scanned PDFs: pages with no text layer read by Tesseract (connectors.ocr), made in the test from known text.

Runs where Tesseract is installed (``.ci/run`` installs it as root); skips with the reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from connectors import SourceFile, load_document
from connectors._text import ParseOptions
from connectors.loader import read_document
from pipeline.errors import UnreadableFileError
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, REPO, make_app

pytestmark = pytest.mark.integration
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="Tesseract is not installed (apt install tesseract-ocr tesseract-ocr-eng)"
)

PAGES = [
    "Lease agreement between Northwind Roasters and Harbour Properties. The tenant rents the ground floor "
    "shop at 14 Quay Street for a term of five years starting on the first of March. The shop may be used "
    "as a coffee bar and roastery with seating for forty guests. Opening hours run from seven in the morning "
    "until eight in the evening, and the tenant may open on Sundays. The landlord hands over the shop with "
    "working water, gas and electricity connections, a fire alarm and two emergency exits. The tenant may "
    "put up a sign above the door after the city has approved its design. Deliveries use the back door on "
    "Harbour Lane before ten in the morning, so that the street stays free for the weekly market.",
    "The monthly rent is 2450 euros, due on the fifth day of each month. A deposit of three months rent "
    "is held by the landlord and returned within thirty days after the keys are handed back. The rent rises "
    "each January by the consumer price index of the year before, at most by three percent. Service charges "
    "for water, heating and the cleaning of the stairs are paid in advance with the rent and settled once a "
    "year. A late payment costs interest of five percent above the base rate. The tenant insures the "
    "fittings, the stock and the glass of the shop window; the landlord insures the building itself.",
    "Either party may end the lease with six months written notice. Repairs to the roof and the outer "
    "walls are the landlord's duty; the tenant keeps the shop window and the espresso bar in good repair. "
    "Changes to the walls, the floor or the wiring need the landlord's written consent. At the end of the "
    "lease the tenant removes its own fittings and leaves the shop clean. Disputes go first to a mediator "
    "chosen by both parties, and only then to the court of the city where the shop lies. This agreement is "
    "signed in two copies, one for each party, and any change to it must be made in writing.",
]


def _bench() -> ModuleType:
    """bench/ocr.py: it sets known text on page images (``scan``) and scores what OCR read (``error_rate``)."""
    spec = importlib.util.spec_from_file_location("ocr_bench", REPO / "bench" / "ocr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
scanned_pdf, cer = BENCH.scan, BENCH.error_rate


def source(tmp_path: Path, name: str, data: bytes) -> SourceFile:
    path = tmp_path / name
    path.write_bytes(data)
    return SourceFile(path=path, source=name, size=len(data), mtime=0.0, root=tmp_path.as_uri())


@needs_tesseract
def test_a_scanned_pdf_is_read_page_by_page(tmp_path: Path) -> None:
    document = load_document(source(tmp_path, "lease.pdf", scanned_pdf(PAGES)))
    assert [s.page for s in document.sections] == [1, 2, 3]
    assert document.metadata["ocr_pages"] == [1, 2, 3] and "pages_without_text" not in document.metadata
    rates = [cer(s.text, truth) for s, truth in zip(document.sections, PAGES, strict=True)]
    assert max(rates) <= 0.03, rates


@needs_tesseract
def test_only_pages_without_a_text_layer_are_read_unless_always(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(DEMO_DOCS / "aurora-2-manual.pdf").pages[0])  # a page with a text layer
    writer.add_page(PdfReader(io.BytesIO(scanned_pdf(PAGES[1:2]))).pages[0])
    mixed = io.BytesIO()
    writer.write(mixed)
    file = source(tmp_path, "mixed.pdf", mixed.getvalue())
    auto, _ = read_document(file, mixed.getvalue())
    assert auto.metadata["ocr_pages"] == [2] and [s.page for s in auto.sections][-1] == 2
    assert "Aurora" in auto.sections[0].text and cer(auto.sections[-1].text, PAGES[1]) <= 0.03
    always, _ = read_document(file, mixed.getvalue(), options=ParseOptions(ocr="always"))
    assert always.metadata["ocr_pages"] == [1, 2]
    with pytest.raises(UnreadableFileError, match="ocr is off"):
        read_document(
            source(tmp_path, "scan.pdf", scanned_pdf(PAGES[:1])),
            scanned_pdf(PAGES[:1]),
            options=ParseOptions(ocr="off"),
        )


@needs_tesseract
def test_a_scanned_page_is_found_and_cited_at_its_page(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    import time

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lease.pdf").write_bytes(scanned_pdf(PAGES))
    app = make_app(tmp_path / "index", embedder)
    started = time.perf_counter()
    report = app.ingest(folder)
    seconds = time.perf_counter() - started
    assert report.added == ("lease.pdf",) and report.notices == ()
    top = app.search("deposit of three months rent", top_k=1, rerank=False).results[0]
    assert (top.chunk.source, top.chunk.page_start) == ("lease.pdf", 2) and "deposit of three months" in top.chunk.text
    print(f"OCR: 3 pages indexed in {seconds:.1f} s ({3 / report.stages_s['parse']:.2f} pages/s of parse time)")
    app.close()


@needs_tesseract
def test_missing_language_data_is_one_notice_that_names_the_package(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(2):
        (folder / f"scan-{n}.pdf").write_bytes(scanned_pdf(PAGES[n : n + 1]))
    shutil.copy(DEMO_DOCS / "faq.txt", folder)
    app = make_app(tmp_path / "index", embedder, source={"ocr_languages": ["xyz"]})
    report = app.ingest(folder)
    assert report.added == ("faq.txt",)
    assert [s.reason for s in report.skipped] == [
        "no text layer (scanned PDF?); OCR is not available (see the notice)"
    ] * 2
    assert report.notices == ("Tesseract has no xyz language data (Debian/Ubuntu: apt install tesseract-ocr-xyz)",)
    app.close()


def test_without_tesseract_the_reason_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on this PATH
    with pytest.raises(UnreadableFileError) as caught:
        load_document(source(tmp_path, "scan.pdf", scanned_pdf(PAGES[:1])))
    assert caught.value.notice is not None and "apt install tesseract-ocr tesseract-ocr-eng" in caught.value.notice
