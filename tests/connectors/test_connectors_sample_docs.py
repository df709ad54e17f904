"""Every file in the shared sample_docs folder: parsed with real text and page numbers, or refused with a reason."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from connectors import SUPPORTED_EXTENSIONS, FolderSource, SourceFile, load_document
from pipeline.errors import UnreadableFileError
from pipeline.types import Document

pytestmark = pytest.mark.unit

SAMPLE_DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "sample_docs"
REPO_ROOT = Path(__file__).resolve().parents[2]

if not SAMPLE_DOCS.is_dir():
    pytest.skip(f"sample documents not found at {SAMPLE_DOCS}", allow_module_level=True)

ALL_FILES = sorted(p.name for p in SAMPLE_DOCS.iterdir() if not p.name.startswith("."))

# file -> (number of sections, page numbers, phrases that must appear in the text)
EXPECTED: dict[str, tuple[int, list[int | None], list[str]]] = {
    "SOURCE.md": (3, [None] * 3, ["mixed-format folder", "ece36293ad73801de2e9f0c1a047b90a"]),
    "copy-protected.pdf": (2, [1, 2], ["LayoutParser: A Unified Toolkit for Deep"]),
    "example-10k-1p.html": (7, [None] * 7, ["Galaxy Gaming, Inc.", "Trading symbol: GLXZ | Name of exchange"]),
    "fake-email.eml": (1, [None], ["This is a test email to use for unit tests.", "Violets are blue"]),
    "fake-memo.pdf": (1, [1], ["20,000 bottles of water"]),
    "fake-power-point.pptx": (1, [1], ["Here is some text in a text box!"]),
    "fake-text.txt": (1, [None], ["This is a test document to use for unit tests.", "I love fuzzy blankets"]),
    "fake.docx": (1, [None], ["Lorem ipsum dolor sit amet."]),
    "federal-register-2020-17221.pdf": (15, list(range(1, 16)), ["Federal Register"]),
    "handbook-1p.docx": (3, [None] * 3, ["The United States Trustee appoints and supervises standing trustees"]),
    "layout-parser-paper-with-table.pdf": (1, [1], ["Current layout detection models in the LayoutParser model zoo"]),
    "multi-column-2p.pdf": (2, [1, 2], ["Dense Passage Retrieval for Open-Domain Question Answering"]),
    "nics-background-checks-2015-11.pdf": (2, [1, 1], ["State / Territory"]),  # cut at its large title
    "norwich-city.txt": (1, [None], ["Iwan Wyn Roberts", "1986–1990 Watford"]),
    "scotus-transcript-p1.pdf": (1, [1], ["IN THE SUPREME COURT OF THE UNITED STATES"]),
    "senate-expenditures.pdf": (1, [1], ["PAYEE NAME"]),
}
TITLES = {
    "SOURCE.md": 'Sample "company documents" folder for ingestion tests (unlabelled)',
    "fake-email.eml": "Test Email",
    "fake-power-point.pptx": "Adding a Bullet Slide",
    "scotus-transcript-p1.pdf": "scotus-transcript-p1",  # PDF title "10811.exe" is a file name: dropped
}
LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"})
REFUSED = {"password.pdf": "encrypted PDF: a password is required"}


@pytest.fixture(scope="module")
def files() -> dict[str, SourceFile]:
    result = FolderSource(SAMPLE_DOCS).scan()
    assert result.skipped == []
    return {f.source: f for f in result.files}


def test_every_sample_file_is_covered(files: dict[str, SourceFile]) -> None:
    assert sorted(files) == ALL_FILES
    assert set(EXPECTED) | set(REFUSED) == set(ALL_FILES)
    assert {Path(name).suffix for name in ALL_FILES} <= SUPPORTED_EXTENSIONS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_file_parses(files: dict[str, SourceFile], name: str) -> None:
    count, pages, phrases = EXPECTED[name]
    doc = load_document(files[name])
    assert isinstance(doc, Document)
    assert len(doc.sections) == count
    assert [s.page for s in doc.sections] == pages
    assert all(s.text and s.text == s.text.strip() for s in doc.sections)
    for phrase in phrases:
        assert phrase in doc.text
    data = (SAMPLE_DOCS / name).read_bytes()
    assert doc.content_hash == hashlib.sha256(data).hexdigest()
    assert doc.id == str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{SAMPLE_DOCS.resolve().as_uri()}/{name}")
    )  # the one id scheme
    assert doc.source == name
    assert doc.metadata["size"] == len(data)
    assert doc.metadata["ext"] == Path(name).suffix.lstrip(".").lower()
    assert doc.metadata["title"] == TITLES.get(name, Path(name).stem)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_sample_file_is_refused(files: dict[str, SourceFile], name: str) -> None:
    with pytest.raises(UnreadableFileError, match="password") as info:
        load_document(files[name])
    assert str(info.value) == REFUSED[name]


def _longest_line(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return max((line for line in lines if len(line) >= 12), key=len, default="")


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".pdf")])
def test_pdf_text_lands_on_its_own_page(files: dict[str, SourceFile], name: str) -> None:
    """A line pypdf extracts from page N is in the section with page N, and not in the others."""
    from pypdf import PdfReader

    reader = PdfReader(SAMPLE_DOCS / name)
    if reader.is_encrypted:
        reader.decrypt("")
    doc = load_document(files[name])
    by_page = {s.page: " ".join(s.text.split()) for s in doc.sections}
    for number, page in enumerate(reader.pages, start=1):
        line = _longest_line((page.extract_text() or "").translate(LIGATURES))
        if not line or page.rotation % 360:  # a rotated page is read in layout mode: its own test below
            continue
        assert line in by_page[number], f"page {number} of {name}"
        assert all(line not in text for p, text in by_page.items() if p != number)


def test_federal_register_page_phrases(files: dict[str, SourceFile]) -> None:
    doc = load_document(files["federal-register-2020-17221.pdf"])
    pages = {s.page: s.text for s in doc.sections}
    # The running header carries the printed page number: PDF page N is printed page 47697 + N.
    for number in range(2, 16):
        assert pages[number].startswith(
            f"{47697 + number} Federal Register / Vol. 85, No. 152 / Thursday, August 6, 2020"
        )
    assert "ESTIMATED COSTS" in pages[6]
    assert "ANM-Seattle-ACO-AMOC-Requests" in pages[15]


def test_copy_protected_pdf_opens_with_empty_password(files: dict[str, SourceFile]) -> None:
    doc = load_document(files["copy-protected.pdf"])
    assert "\ufb01" not in doc.text  # ligatures are spelled out
    assert "Unified Toolkit" in doc.sections[0].text


def test_email_metadata(files: dict[str, SourceFile]) -> None:
    doc = load_document(files["fake-email.eml"])
    assert doc.metadata["from"] == "Matthew Robinson <mrobinson@unstructured.io>"
    assert doc.metadata["to"] == "NotMatthew <NotMatthew@notunstructured.com>"
    assert doc.metadata["date"] == "Fri, 16 Dec 2022 17:04:16 -0500"
    assert doc.metadata["mime"] == "message/rfc822"


def test_pptx_slide_title_is_heading(files: dict[str, SourceFile]) -> None:
    (section,) = load_document(files["fake-power-point.pptx"]).sections
    assert section.heading == ("Adding a Bullet Slide",)
    assert section.text.splitlines()[0] == "Find the bullet slide layout"
    assert "Adding a Bullet Slide" not in section.text


def test_norwich_double_encoded_dashes_are_repaired(files: dict[str, SourceFile]) -> None:
    text = load_document(files["norwich-city.txt"]).text
    assert not re.search("[\u0080-\u009f]", text)
    assert "â" not in text


def test_import_is_lazy() -> None:
    code = (
        "import sys, connectors; "
        "heavy = [m for m in ('pypdf', 'docx', 'pptx', 'selectolax', 'charset_normalizer') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_rotated_table_keeps_its_cells_apart(files: dict[str, SourceFile]) -> None:
    """pypdf's plain mode glued the row's cells of this landscape page: ``2019DHAW20190002``."""
    text = load_document(files["senate-expenditures.pdf"]).text
    rows = [" ".join(line.split()) for line in text.splitlines() if "DHAW20190002" in line]
    assert rows == [
        "DHAW20190002 05/24/2019 CITIBANK - TRAVEL CBA CARD 03/10/2019 05/15/2019 STAFF TRANSPORTATION 907.96"
    ]
    assert "2019DHAW" not in text and "PAYEE NAME" in text


def test_a_pdf_outline_gives_its_pages_headings(files: dict[str, SourceFile], tmp_path: Path) -> None:
    """Bookmarks name the sections: each page is headed by the entry that starts on it, else the one before."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(files["federal-register-2020-17221.pdf"].path))
    rules = writer.add_outline_item(title="Proposed rules", page_number=1)
    writer.add_outline_item(title="Summary", page_number=1, parent=rules)
    writer.add_outline_item(title="Background", page_number=4, parent=rules)
    writer.add_outline_item(title="Regulatory analyses", page_number=9)
    path = tmp_path / "with-outline.pdf"
    with path.open("wb") as out:
        writer.write(out)
    document = load_document(SourceFile(path=path, source=path.name, size=path.stat().st_size, mtime=0.0))
    headings = {s.page: s.heading for s in document.sections}
    assert headings[1] == ()  # before the first entry
    assert headings[2] == ("Proposed rules",) and headings[3] == headings[4] == ("Proposed rules", "Summary")
    assert headings[5] == ("Proposed rules", "Background") and headings[9] == ("Proposed rules", "Background")
    assert headings[10] == ("Regulatory analyses",) and headings[15] == ("Regulatory analyses",)
    plain = load_document(files["federal-register-2020-17221.pdf"])
    assert all(s.heading == () for s in plain.sections)  # no outline: no headings, as before


def test_a_pdf_without_an_outline_is_headed_by_its_larger_lines(files: dict[str, SourceFile]) -> None:
    nics = load_document(files["nics-background-checks-2015-11.pdf"])
    assert [s.heading for s in nics.sections] == [(), ("NICS Firearm Background Checks",)]
    assert nics.sections[1].text.startswith("NICS Firearm Background Checks")  # the line stays in the text
    paper = load_document(files["multi-column-2p.pdf"])
    assert {s.heading for s in paper.sections} == {("Dense Passage Retrieval for Open-Domain Question Answering",)}
    # A running header at a larger size is no heading: the register's page headers are not.
    register = load_document(files["federal-register-2020-17221.pdf"])
    assert not any("Federal Register" in " ".join(s.heading) for s in register.sections)


def test_a_docx_without_heading_styles_is_headed_by_its_capital_lines(files: dict[str, SourceFile]) -> None:
    handbook = load_document(files["handbook-1p.docx"])
    assert [s.heading for s in handbook.sections] == [
        ("A. PURPOSE",),
        ("B. ROLE OF THE UNITED STATES TRUSTEE",),
        ("C. STATUTORY DUTIES OF A STANDING TRUSTEE",),
    ]
    assert load_document(files["fake.docx"]).sections[0].heading == ()  # one plain paragraph: no heading
