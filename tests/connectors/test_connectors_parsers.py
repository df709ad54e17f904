"""Each parser on small files generated in tmp_path, checked against exact expected output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connectors import FolderSource, load_document
from pipeline.errors import UnreadableFileError
from pipeline.types import Document, Section

pytestmark = pytest.mark.unit

SAMPLE_DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "sample_docs"


def load(tmp_path: Path, name: str, content: str | bytes) -> Document:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    (file,) = [f for f in FolderSource(tmp_path).scan().files if f.source == name]
    return load_document(file)


def unreadable(tmp_path: Path, name: str, content: str | bytes) -> str:
    with pytest.raises(UnreadableFileError) as info:
        load(tmp_path, name, content)
    return str(info.value)


# -- Markdown -------------------------------------------------------------

MARKDOWN = """\
---
title: Front matter title
tags: [hr]
---
Preamble before any heading.

# Employee handbook

Welcome.

## Time off

General rules.

### Vacation

You get **25 days**.

```python
# not a heading
x = 1
```

### Sick leave ###

Tell your manager.

~~~
## also not a heading
~~~

## **Benefits** and [perks](perks.md)

Health and pension.

# Appendix

Nothing_here_is_emphasis.
"""


def test_markdown_sections_follow_heading_paths(tmp_path: Path) -> None:
    doc = load(tmp_path, "handbook.md", MARKDOWN)
    assert doc.sections == (
        Section("Preamble before any heading."),
        Section("Welcome.", heading=("Employee handbook",)),
        Section("General rules.", heading=("Employee handbook", "Time off")),
        Section(
            "You get **25 days**.\n\n```python\n# not a heading\nx = 1\n```",
            heading=("Employee handbook", "Time off", "Vacation"),
        ),
        Section(
            "Tell your manager.\n\n~~~\n## also not a heading\n~~~",
            heading=("Employee handbook", "Time off", "Sick leave"),
        ),
        Section("Health and pension.", heading=("Employee handbook", "Benefits and perks")),
        Section("Nothing_here_is_emphasis.", heading=("Appendix",)),
    )
    assert doc.metadata["title"] == "Employee handbook"
    assert "title: Front matter title" not in doc.text


def test_markdown_title_falls_back_to_front_matter_then_file_stem(tmp_path: Path) -> None:
    doc = load(tmp_path, "notes.md", "---\ntitle: 'Team notes'\n---\n## Agenda\n\nItems.\n")
    assert doc.metadata["title"] == "Team notes"
    assert doc.sections == (Section("Items.", heading=("Agenda",)),)
    other = load(tmp_path, "plain-notes.markdown", "Just text, #hashtag, no heading.\n")
    assert other.metadata["title"] == "plain-notes"
    assert other.sections == (Section("Just text, #hashtag, no heading."),)


def test_markdown_unclosed_fence_swallows_the_rest(tmp_path: Path) -> None:
    doc = load(tmp_path, "a.md", "# Top\n\n```\n# inside\n")
    assert doc.sections == (Section("```\n# inside", heading=("Top",)),)


# -- HTML -----------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><title>  Leave   policy </title>
<style>body { color: red }</style><script>var secret = "js";</script></head>
<body>
<noscript>Please enable JavaScript</noscript>
<nav>Home &gt; Policies</nav>
<h1>Time off</h1>
<p>All   staff
   are covered.</p>
<h2>Vacation</h2>
<ul><li>25 days</li><li>Carry over <b>5</b> days</li></ul>
<table><tr><th>Grade</th><th>Days</th></tr><tr><td>A</td><td>25</td></tr></table>
<script>alert("nope")</script>
<div hidden>Hidden text</div><template><p>Template text</p></template>
<svg><text>Logo text</text></svg>
<h2>Sick <em>leave</em></h2>
<div><div>Call in</div><div>before 9am<br>every day</div></div>
<h1>Contact</h1><p>hr@example.com</p>
</body></html>
"""


def test_html_visible_text_split_at_headings(tmp_path: Path) -> None:
    doc = load(tmp_path, "policy.html", HTML)
    assert doc.metadata["title"] == "Leave policy"
    assert doc.sections == (
        Section("Home > Policies"),
        Section("All staff are covered.", heading=("Time off",)),
        Section("25 days\nCarry over 5 days", heading=("Time off", "Vacation")),
        Section("Grade: A | Days: 25", heading=("Time off", "Vacation", "table 1, rows 2-2")),  # a table of its own
        Section("Call in\nbefore 9am\nevery day", heading=("Time off", "Sick leave")),
        Section("hr@example.com", heading=("Contact",)),
    )
    for hidden in ("secret", "alert", "enable JavaScript", "Hidden", "Template", "Logo", "color"):
        assert hidden not in doc.text


def test_html_declared_latin1_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e</p></body></html>'
    doc = load(tmp_path, "menu.htm", html.encode("latin-1"))
    assert doc.metadata["title"] == "Café"
    assert doc.text == "Crème brûlée"


def test_html_without_visible_text_is_unreadable(tmp_path: Path) -> None:
    assert unreadable(tmp_path, "blank.html", "<html><script>x()</script></html>") == "no text content"


# -- Plain text -------------------------------------------------------------


def test_latin1_text_is_decoded(tmp_path: Path) -> None:
    text = (
        "Déjà vu: the café served crème brûlée and a piña colada.\n"
        "Les élèves étudient à l'école française; naïve façade, garçon, Noël.\n"
    )
    doc = load(tmp_path, "latin1.txt", text.encode("latin-1"))
    assert doc.text == text.strip()
    assert doc.sections == (Section(text.strip()),)


def test_utf8_bom_and_crlf_text(tmp_path: Path) -> None:
    doc = load(tmp_path, "bom.txt", "\ufeffLine one\r\nLine two   \r\n\r\n\r\n\r\nEnd\r\n".encode())
    assert doc.text == "Line one\nLine two\n\nEnd"


RST_TEXT = """\
==========================================
:mod:`logging` --- Logging facility
==========================================

.. module:: logging

--------------

This module defines a flexible event logging system.

Logger Objects
--------------

Loggers have the following attributes.

   An indented literal block
   -------------------------

Handler Objects
---------------

Handlers send records.

Rotating files
^^^^^^^^^^^^^^

Rotation by size.

Thread Safety
-------------

The module is thread-safe.
text right after a heading line
-------
"""


def test_underlined_headings_split_plain_text_into_sections(tmp_path: Path) -> None:
    """The Python docs' .rst.txt sources: an overlined title, levels in the order their styles appear, a
    transition and an indented underline that are not headings, inline roles taken off the heading."""
    doc = load(tmp_path, "logging.rst.txt", RST_TEXT)
    assert doc.metadata["title"] == "logging --- Logging facility"
    title = ("logging --- Logging facility",)
    assert [s.heading for s in doc.sections] == [
        title,
        (*title, "Logger Objects"),
        (*title, "Handler Objects"),
        (*title, "Handler Objects", "Rotating files"),
        (*title, "Thread Safety"),
    ]
    assert (
        doc.sections[0].text
        == ".. module:: logging\n\n--------------\n\nThis module defines a flexible event logging system."
    )
    assert "An indented literal block\n   -------------------------" in doc.sections[1].text
    assert doc.sections[-1].text.endswith("text right after a heading line\n-------")
    assert not any("====" in s.text or "^^^^" in s.text for s in doc.sections)


def test_double_encoded_utf8_is_repaired(tmp_path: Path) -> None:
    mojibake = "1986–1990 Watford".encode().decode("latin-1").encode()
    assert load(tmp_path, "m.txt", mojibake).text == "1986–1990 Watford"


def test_binary_data_named_txt_is_unreadable(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8
    assert unreadable(tmp_path, "data.txt", data) == "binary data, not text"
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
    assert unreadable(tmp_path, "image.txt", png) == "binary data, not text"


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "a.eml", "a.pptx"])
def test_zero_byte_file_is_empty_for_every_format(tmp_path: Path, name: str) -> None:
    assert unreadable(tmp_path, name, b"") == "empty file"


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    assert unreadable(tmp_path, "blank.txt", " \n\t\r\n  ") == "empty file"


# -- PDF --------------------------------------------------------------------


def test_truncated_pdf_is_unreadable(tmp_path: Path) -> None:
    source = SAMPLE_DOCS / "fake-memo.pdf"
    if not source.exists():
        pytest.skip(f"sample documents not found at {SAMPLE_DOCS}")
    reason = unreadable(tmp_path, "truncated.pdf", source.read_bytes()[:1000])
    assert reason.startswith("corrupt PDF (")


def test_not_a_pdf_is_unreadable(tmp_path: Path) -> None:
    reason = unreadable(tmp_path, "fake.pdf", "just some text, not a PDF at all")
    assert reason.startswith("corrupt PDF (")


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    import shutil

    expected = (
        "no text: no page has a text layer, and OCR read none"  # blank pages: OCR finds nothing either
        if shutil.which("tesseract")
        else "no text layer (scanned PDF?); OCR is not available (see the notice)"
    )
    assert unreadable(tmp_path, "scan.pdf", buffer.getvalue()) == expected


def test_pdf_encrypted_with_user_password(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    source = SAMPLE_DOCS / "fake-memo.pdf"
    if not source.exists():
        pytest.skip(f"sample documents not found at {SAMPLE_DOCS}")
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert unreadable(tmp_path, "locked.pdf", buffer.getvalue()) == ("encrypted PDF: a password is required")
    # Same file, empty user password: opens like copy-protected.pdf does.
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    doc = load(tmp_path, "protected.pdf", buffer.getvalue())
    assert [s.page for s in doc.sections] == [1]
    assert "20,000 bottles of water" in doc.text


# -- DOCX -------------------------------------------------------------------


def test_docx_headings_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = ""
    document.add_paragraph("Staff handbook", style="Title")
    document.add_paragraph("Intro paragraph.")
    document.add_heading("Time off", level=1)
    document.add_paragraph("General rules.")
    document.add_heading("Vacation", level=2)
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate([["Grade", "Days", ""], ["A", "25", "paid"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After the table.")
    document.add_heading("Benefits", level=1)
    document.add_paragraph("Pension.")
    buffer = io.BytesIO()
    document.save(buffer)

    doc = load(tmp_path, "handbook.docx", buffer.getvalue())
    assert doc.metadata["title"] == "Staff handbook"
    assert doc.sections == (
        Section("Intro paragraph.", heading=("Staff handbook",)),
        Section("General rules.", heading=("Staff handbook", "Time off")),
        Section("Before the table.", heading=("Staff handbook", "Time off", "Vacation")),
        # a table is sections of its own; a header row with an empty cell is not taken for one
        Section("Grade | Days\nA | 25 | paid", heading=("Staff handbook", "Time off", "Vacation", "table 1, rows 1-2")),
        Section("After the table.", heading=("Staff handbook", "Time off", "Vacation")),
        Section("Pension.", heading=("Staff handbook", "Benefits")),
    )


def test_broken_docx_is_wrapped_into_unreadable(tmp_path: Path) -> None:
    reason = unreadable(tmp_path, "broken.docx", b"PK\x03\x04 this is not really a zip file")
    assert reason.startswith("cannot parse (")
    assert "BadZipFile" in reason or "zip" in reason.lower()


# -- PPTX -------------------------------------------------------------------


def test_pptx_one_section_per_slide(tmp_path: Path) -> None:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Quarterly results"
    slide.placeholders[1].text_frame.text = "Revenue up 10%\nCosts flat"
    blank = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title
    blank.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1)).text_frame.text = "Free text"
    rows = blank.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for r, row in enumerate([["Region", "Sales"], ["EU", "12"]]):
        for c, value in enumerate(row):
            rows.cell(r, c).text = value
    only_title = deck.slides.add_slide(deck.slide_layouts[5])  # title only, no body
    only_title.shapes.title.text = "Questions?"
    buffer = io.BytesIO()
    deck.save(buffer)

    doc = load(tmp_path, "deck.pptx", buffer.getvalue())
    assert doc.sections == (
        Section("Revenue up 10%\nCosts flat", page=1, heading=("Quarterly results",)),
        Section("Free text", page=2),
        Section("Region: EU | Sales: 12", page=2, heading=("table, rows 2-2",)),
    )
    assert doc.metadata["title"] == "Quarterly results"
    assert doc.metadata["slides"] == 3


# -- EML --------------------------------------------------------------------


def test_eml_html_only_body_and_encoded_headers(tmp_path: Path) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Réunion: budget"
    message["From"] = "Zoë <zoe@example.com>"
    message["To"] = "team@example.com"
    message["Date"] = "Mon, 02 Jan 2023 09:00:00 +0000"
    message.set_content(
        "<html><body><h1>Budget</h1><p>Plan für 2023</p><script>x()</script></body></html>",
        subtype="html",
        charset="iso-8859-1",
    )
    message.add_attachment(b"%PDF-1.4 attachment", maintype="application", subtype="pdf", filename="a.pdf")

    doc = load(tmp_path, "mail.eml", message.as_bytes())
    assert doc.metadata["title"] == "Réunion: budget"
    assert doc.metadata["from"] == "Zoë <zoe@example.com>"
    assert doc.metadata["to"] == "team@example.com"
    assert doc.metadata["date"] == "Mon, 02 Jan 2023 09:00:00 +0000"
    assert doc.sections == (Section("Plan für 2023", heading=("Budget",)),)
    assert "attachment" not in doc.text


def test_eml_prefers_plain_text_part(tmp_path: Path) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Hello"
    message.set_content("Plain body.\n")
    message.add_alternative("<p>HTML body.</p>", subtype="html")
    doc = load(tmp_path, "hello.eml", message.as_bytes())
    assert doc.sections == (Section("Plain body."),)
