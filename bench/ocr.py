"""OCR speed and accuracy on scanned pages made from known text; prints one JSON object.

The text of the demo documents is set on A4 page images at 300 dpi (Pillow's own font), saved as a PDF with
no text layer, and read the way a sync reads it (``connectors.load_document``: PDFium renders each page,
Tesseract reads it). Reported: pages per second, and the character error rate of each page against the text
that was set on it (edit distance over its length, whitespace runs as one space).

    python bench/ocr.py [--pages 6]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import textwrap
import time
from pathlib import Path

from connectors import SourceFile, load_document

DEMO = Path(__file__).resolve().parents[1] / "demo_docs"


def pages_of_text(count: int, words_per_page: int = 230) -> list[str]:
    words = " ".join(p.read_text(encoding="utf-8") for p in sorted(DEMO.glob("*.md"))).split()
    words = [w for w in words if w.isascii() and not w.startswith(("#", "|", "-", "*", "<"))]
    return [" ".join(words[(n * words_per_page + i) % len(words)] for i in range(words_per_page)) for n in range(count)]


def scan(pages: list[str]) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=42)
    images = []
    for text in pages:
        image = Image.new("L", (2480, 3508), 255)
        draw = ImageDraw.Draw(image)
        for n, line in enumerate(textwrap.wrap(text, 70)):
            draw.text((180, 250 + n * 64), line, fill=0, font=font)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=300)
    return out.getvalue()


def error_rate(read: str, truth: str) -> float:
    a, b = " ".join(read.split()), " ".join(truth.split())
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1] / max(len(b), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=6)
    args = parser.parse_args()
    truth = pages_of_text(args.pages)
    data = scan(truth)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "scan.pdf"
        path.write_bytes(data)
        started = time.perf_counter()
        document = load_document(SourceFile(path, "scan.pdf", len(data), 0.0, Path(scratch).as_uri()))
        seconds = time.perf_counter() - started
    read = {s.page: s.text for s in document.sections}
    rates = [round(error_rate(read.get(n, ""), text), 4) for n, text in enumerate(truth, start=1)]
    print(
        json.dumps(
            {
                "pages": args.pages,
                "seconds": round(seconds, 2),
                "pages_per_s": round(args.pages / seconds, 3),
                "cer_per_page": rates,
                "cer_max": max(rates),
                "dpi": 300,
                "pdf_bytes": len(data),
            }
        )
    )


if __name__ == "__main__":
    main()
