"""A folder of hostile and broken files, synced by the real CLI.

Every readable file is indexed, every other one is reported with its reason,
the exit code follows the CLI contract (0, or 3 with --strict), a second run
does no work, no parser call runs past its time limit, and a 200 MB file over
the size limit costs no memory.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_DOCS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 4
DEEP = 40
EXPECTED_SKIPS = {
    "encrypted.pdf": "encrypted",
    "truncated.pdf": "PDF",
    "scanned.pdf": "no text",
    "empty.txt": "empty",
    "binary.txt": "binary data",
    "huge.txt": "file too large",
    "loop": "symlink loop",
    "outside.txt": "outside the folder",
    "locked.md": "permission denied",
    "bomb.docx": f"longer than {TIMEOUT_S} s",
}
INDEXED = {
    "latin1.txt": "crème",
    "long-line.txt": "zanzibarite",
    "notes with spaces.md": "gooseberry",
    "résumé ünïcode 文件.txt": "marzipan",
    "/".join(f"d{n}" for n in range(DEEP)) + "/deep.md": "quokka",
}


def _pdf(folder: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    manual = (DEMO_DOCS / "aurora-2-manual.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(manual[: len(manual) // 3])
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(manual)))
    writer.encrypt(user_password="secret", owner_password="owner")
    with (folder / "encrypted.pdf").open("wb") as handle:
        writer.write(handle)
    blank = PdfWriter()
    blank.add_blank_page(width=612, height=792)  # a scan without OCR: pages, no text layer
    with (folder / "scanned.pdf").open("wb") as handle:
        blank.write(handle)


def _zip_bomb(path: Path) -> None:
    """A 90 KB .docx whose document.xml inflates to ~150 MB: parsing it takes far past the limit."""
    paragraph = b"<w:p><w:r><w:t>bomb text filler words</w:t></w:r></w:p>" * 1000
    ns = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        bomb.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>',
        )
        with bomb.open("word/document.xml", "w") as xml:
            xml.write(b'<?xml version="1.0"?><w:document ' + ns + b"><w:body>")
            for _ in range(2500):
                xml.write(paragraph)
            xml.write(b"</w:body></w:document>")


def _hostile_folder(base: Path) -> Path:
    folder = base / "docs"
    folder.mkdir()
    _pdf(folder)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(random.Random(1).randbytes(50_000))
    (folder / "latin1.txt").write_bytes("Café crème brûlée, façade, naïve déjà vu: l'été à Genève.\n".encode("latin-1"))
    (folder / "long-line.txt").write_text(" ".join(["lorem ipsum dolor"] * 300_000) + " zanzibarite end")  # 5 MB
    (folder / "notes with spaces.md").write_text("# Fruit\n\nThe gooseberry harvest is in July.\n")
    (folder / "résumé ünïcode 文件.txt").write_text("The marzipan recipe needs almonds and sugar.\n")
    deep = folder.joinpath(*(f"d{n}" for n in range(DEEP)))
    deep.mkdir(parents=True)
    (deep / "deep.md").write_text("# Deep\n\nA quokka lives at the bottom of the tree.\n")
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)  # a folder link back to the root
    secret = base / "secret.txt"
    secret.write_text("outsider password hunter2\n")
    (folder / "outside.txt").symlink_to(secret)
    locked = folder / "locked.md"
    locked.write_text("# Locked\n\nnobody may read this wombat.\n")
    locked.chmod(0)
    _zip_bomb(folder / "bomb.docx")
    return folder


def _add_huge(folder: Path) -> None:
    line = b"This line of a very large log file repeats to fill two hundred megabytes of text.\n"
    block = line * (1_000_000 // len(line))
    with (folder / "huge.txt").open("wb") as handle:
        for _ in range(200):
            handle.write(block)


def _unprivileged() -> list[str]:
    """Root reads any file; without the two DAC capabilities it reads like everyone else."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a file without read permission would still be readable")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def _run(base: Path, *args: str) -> tuple[int, dict[str, Any], str, float]:
    """Exit code, JSON output, stderr and peak RSS (MB) of one CLI run."""
    # The CLI runs as the child of a probe, so the peak RSS measured is ragline's alone.
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "sys.stderr.write(f'\\nmaxrss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); "
        "sys.exit(r.returncode)"
    )
    command = [
        sys.executable,
        "-m",
        "pipeline.faces.cli",
        "--index",
        str(base / "index"),
        "--config",
        str(base / "r.toml"),
    ]
    env = {**os.environ, "HOME": str(base), "XDG_CACHE_HOME": str(base / "cache")}
    done = subprocess.run(
        [*_unprivileged(), sys.executable, "-c", probe, *command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=base,
    )
    rss_mb = int(done.stderr.rsplit("maxrss_kb=", 1)[1].split()[0]) / 1024
    return done.returncode, json.loads(done.stdout), done.stderr, rss_mb


def test_hostile_folder(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> None:
    from tests.conftest import make_app

    base = tmp_path_factory.mktemp("hostile")
    folder = _hostile_folder(base)
    (base / "r.toml").write_text(f"[source]\nmax_file_mb = 100\nparse_timeout_s = {TIMEOUT_S}\n")

    code, first, err, rss_small = _run(base, "ingest", str(folder), "--json")
    assert code == 0, err
    _add_huge(folder)
    code, second, err, rss_huge = _run(base, "ingest", str(folder), "--json")
    assert code == 0, err
    code, third, err, _ = _run(base, "ingest", str(folder), "--json", "--strict")
    assert code == 3, err

    reasons = {s["source"]: s["reason"] for s in third["skipped"]}
    for name, reason in EXPECTED_SKIPS.items():
        assert reason in reasons.get(name, ""), (name, reasons.get(name))
    assert "symlink loop" in reasons.get("sub/up", "")  # a link back to the root
    print(
        f"hostile folder: {len(INDEXED)} indexed, {len(reasons)} skipped; peak RSS {rss_small:.0f} MB, "
        f"{rss_huge:.0f} MB with the 200 MB file"
    )
    assert first["added"] == len(INDEXED) + 0 and second["chunks_written"] == third["chunks_written"] == 0
    assert second["added"] == second["updated"] == third["added"] == third["updated"] == 0
    assert rss_huge < rss_small + 100, (rss_small, rss_huge)  # the 200 MB file was never read

    app = make_app(base / "index", embedder)
    assert sorted(app.store().sources()) == sorted(INDEXED)
    for source, word in INDEXED.items():
        assert app.search(word, mode="bm25", top_k=1).results[0].chunk.source == source, word
    leaked = app.search("hunter2 outsider password", mode="bm25").results
    assert all("hunter2" not in r.chunk.text for r in leaked)
    app.close()
