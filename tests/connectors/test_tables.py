"""Tables in Word, PowerPoint, HTML, PDF and CSV files: rows as ``header: value`` text, in blocks that each
carry the column names, so a question about a number finds its row and its column."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connectors import SourceFile, load_document
from connectors.table import BLOCK_CHARS, looks_like_header, row_text, table_sections
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.types import Document
from tests.conftest import SAMPLE_DOCS, make_app

HEADER = ["Year", "Region", "Revenue (EUR)", "Total orders"]
ROWS = [
    [str(2015 + n), ("North", "South", "East")[n % 3], f"{1_100_000 + n * 87_311:,}", f"{4_210 + n * 377:,}"]
    for n in range(9)
]


def load(tmp_path: Path, name: str, data: bytes) -> Document:
    path = tmp_path / name
    path.write_bytes(data)
    return load_document(SourceFile(path=path, source=name, size=len(data), mtime=0.0, root=tmp_path.as_uri()))


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Annual figures", level=1)
    document.add_paragraph("Our revenue grew in most years; the table below has the figures by year.")
    table = document.add_table(rows=1 + len(ROWS), cols=len(HEADER))
    for r, row in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("The board approved these figures in March.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "Revenue by year"
    shape = slide.shapes.add_table(1 + len(ROWS), len(HEADER), Inches(0.5), Inches(1.5), Inches(9), Inches(4))
    for r, row in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def html_bytes() -> bytes:
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in ROWS)
    layout = "<table><tr><td><p>Contact us at the front desk.</p></td></tr></table>"
    return (
        f"<html><body><h1>Annual figures</h1><p>Revenue by year.</p><table><caption>Revenue by year</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{layout}</body></html>"
    ).encode()


def pdf_bytes(ruled: bool = True) -> bytes:
    """A page of text, then a table drawn with cell borders (``ruled``) or without, made with reportlab."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

    out = io.BytesIO()
    styles = getSampleStyleSheet()
    table = Table([HEADER, *ROWS])
    if ruled:
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, "black")]))
    story = [Paragraph("Annual figures", styles["Heading1"]), Paragraph("Revenue by year.", styles["Normal"]), table]
    SimpleDocTemplate(out, pagesize=A4).build(story)
    return out.getvalue()


def table_text(document: Document) -> list[str]:
    return [s.text for s in document.sections if s.heading and "rows" in s.heading[-1]]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "make"), [("figures.docx", docx_bytes), ("slides.pptx", pptx_bytes), ("page.html", html_bytes)]
)
def test_each_row_names_its_columns_in_every_block(tmp_path: Path, name: str, make: object) -> None:
    document = load(tmp_path, name, make())  # type: ignore[operator]
    blocks = table_text(document)
    lines = [line for block in blocks for line in block.splitlines()]
    assert len(lines) == len(ROWS) and len(blocks) >= 2  # nine rows do not fit one block
    assert all(len(b) <= BLOCK_CHARS for b in blocks)
    assert lines[4] == "Year: 2019 | Region: South | Revenue (EUR): 1,449,244 | Total orders: 5,718"
    assert all(line.startswith("Year: ") and "| Total orders: " in line for line in lines)
    headings = [s.heading for s in document.sections if s.heading and "rows" in s.heading[-1]]
    assert headings[0][-1].endswith("rows 2-" + headings[0][-1].rsplit("-", 1)[1])  # the header is row 1
    assert all(h[0] in ("Annual figures", "Revenue by year") or h[0].startswith("table") for h in headings)


@pytest.mark.unit
def test_a_pdf_table_without_rules_stays_page_text(tmp_path: Path) -> None:
    ruled, plain = load(tmp_path, "a.pdf", pdf_bytes()), load(tmp_path, "b.pdf", pdf_bytes(ruled=False))
    assert table_text(ruled) and not table_text(plain)
    assert "2019 South 1,449,244 5,718" in " ".join(plain.text.split())  # the text layer, as it always was
    assert [s.page for s in ruled.sections] == [1] * len(ruled.sections)  # cited at the page the table is on
    assert "2019 South 1,449,244 5,718" in " ".join(ruled.sections[0].text.split())  # and the page keeps it


@pytest.mark.unit
def test_prose_around_a_table_stays_prose(tmp_path: Path) -> None:
    document = load(tmp_path, "figures.docx", docx_bytes())
    prose = [s.text for s in document.sections if not (s.heading and "rows" in s.heading[-1])]
    assert prose == [
        "Our revenue grew in most years; the table below has the figures by year.",
        "The board approved these figures in March.",
    ]
    page = load(tmp_path, "page.html", html_bytes())
    assert any("Contact us at the front desk." in s.text for s in page.sections)  # a layout table is text


@pytest.mark.unit
def test_header_guess_and_rows_without_one() -> None:
    assert looks_like_header(["Year", "Total"]) and not looks_like_header(["2019", "1,234"])
    assert not looks_like_header(["Name", ""]) and not looks_like_header(["Total", "Total"])
    assert row_text(None, ["a", "", "b"]) == "a | b"
    assert row_text(["Item", "", "Price"], ["Tea", "x", ""]) == "Item: Tea | x"
    sections = table_sections([["12", "North"], ["13", "South"]], ("Sales",), "table 1")
    assert [(s.text, s.heading) for s in sections] == [("12 | North\n13 | South", ("Sales", "table 1, rows 1-2"))]
    spacer = table_sections([["Symbol", "", "Exchange"], ["GLXZ", "", "OTCQB"]])  # an empty spacer column
    assert spacer[0].text == "Symbol: GLXZ | Exchange: OTCQB"


@pytest.mark.unit
@pytest.mark.skipif(not SAMPLE_DOCS.is_dir(), reason="shared/datasets/sample_docs is not beside the repository")
def test_the_10k_table_of_listed_securities(tmp_path: Path) -> None:
    document = load(tmp_path, "10k.html", (SAMPLE_DOCS / "example-10k-1p.html").read_bytes())
    assert (
        "Title of each class: Common stock | Trading symbol: GLXZ | Name of exchange on which registered: "
        "OTCQB marketplace" in table_text(document)
    )


@pytest.mark.integration
def test_a_question_about_a_number_finds_its_row(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "figures.docx").write_bytes(docx_bytes())
    (folder / "slides.pptx").write_bytes(pptx_bytes())
    (folder / "page.html").write_bytes(html_bytes())
    (folder / "figures.pdf").write_bytes(pdf_bytes())
    app = make_app(tmp_path / "index", embedder)
    app.ingest(folder)
    row = "Year: 2019 | Region: South | Revenue (EUR): 1,449,244 | Total orders: 5,718"
    for question in ("What was the revenue in 2019?", "How many total orders were there in 2019?"):
        results = app.search(question, top_k=10, rerank=False).results
        assert row in results[0].chunk.text, question
        # in each file, the block that holds 2019 ranks above the one that does not; the four files read their
        # tables alike, so a block of one stands for its copies in the others
        ranked = [c for r in results for c in (r.chunk, *r.copies)]
        for source in ("figures.docx", "slides.pptx", "page.html", "figures.pdf"):
            blocks = [c.text for c in ranked if c.source == source and "Year: " in c.text]
            assert row in blocks[0], (question, source)
    app.close()
