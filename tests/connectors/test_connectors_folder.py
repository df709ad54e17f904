"""FolderSource.scan and the glob matcher, on real folders built in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors import FolderSource, ScanResult, SourceFile
from pipeline.errors import RaglineError
from pipeline.globs import glob_match
from pipeline.types import SkippedFile

pytestmark = pytest.mark.unit


def write(root: Path, rel: str, content: str | bytes = "hello") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def sources(result: ScanResult) -> list[str]:
    return [f.source for f in result.files]


def reasons(result: ScanResult) -> dict[str, str]:
    return {s.source: s.reason for s in result.skipped}


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("a.md", "**/*.md", True),
        ("x/y/a.md", "**/*.md", True),
        ("a.md", "*.md", True),
        ("x/a.md", "*.md", False),
        ("docs/a.md", "docs/**", True),
        ("docs/sub/a.md", "docs/**", True),
        ("docsx/a.md", "docs/**", False),
        ("docs/sub/a.md", "docs/", True),
        ("a/b/c/d.txt", "a/**/d.txt", True),
        ("a/d.txt", "a/**/d.txt", True),
        ("a.md", "?.md", True),
        ("ab.md", "?.md", False),
        ("a1.md", "a[0-9].md", True),
        ("ax.md", "a[!0-9].md", True),
        ("a1.md", "a[!0-9].md", False),
        ("A.MD", "**/*.md", False),
        ("a.md", "./*.md", True),
        ("a+b (1).md", "a+b (1).md", True),
        ("a/b.md", "**", True),
    ],
)
def test_glob_match(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


def test_scan_is_recursive_sorted_and_describes_files(tmp_path: Path) -> None:
    write(tmp_path, "b.md", "# B")
    write(tmp_path, "a.txt", "12345")
    write(tmp_path, "sub/deeper/c.pdf", b"%PDF-1.4")
    write(tmp_path, "sub/A.HTML", "<p>x</p>")
    result = FolderSource(tmp_path).scan()
    assert sources(result) == ["a.txt", "b.md", "sub/A.HTML", "sub/deeper/c.pdf"]
    assert result.skipped == []
    first = result.files[0]
    assert isinstance(first, SourceFile)
    assert first.path == tmp_path / "a.txt" and first.path.is_absolute()
    assert first.size == 5
    assert first.mtime == pytest.approx((tmp_path / "a.txt").stat().st_mtime)


def test_scan_accepts_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "docs/a.md", "# A")
    monkeypatch.chdir(tmp_path)
    result = FolderSource("docs").scan()
    assert sources(result) == ["a.md"]
    assert result.files[0].path == tmp_path / "docs" / "a.md"


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    for rel in ["a.md", "guide/b.md", "guide/drafts/c.md", "guide/d.txt", "e.pdf"]:
        write(tmp_path, rel)
    only_md = FolderSource(tmp_path, include=["**/*.md"], exclude=["guide/drafts/**"]).scan()
    assert sources(only_md) == ["a.md", "guide/b.md"]
    assert only_md.skipped == []  # files the globs leave out are not "skipped"
    top_level = FolderSource(tmp_path, include=["*.md", "*.pdf"]).scan()
    assert sources(top_level) == ["a.md", "e.pdf"]
    several = FolderSource(tmp_path, include=["guide/**"], exclude=["**/*.txt"]).scan()
    assert sources(several) == ["guide/b.md", "guide/drafts/c.md"]


def test_hidden_files_and_folders_are_ignored_silently(tmp_path: Path) -> None:
    write(tmp_path, "visible.md")
    write(tmp_path, ".hidden.md")
    write(tmp_path, ".git/config.txt")
    write(tmp_path, "sub/.cache/x.md")
    result = FolderSource(tmp_path).scan()
    assert sources(result) == ["visible.md"]
    assert result.skipped == []


def test_binary_types_are_skipped_by_name_and_the_rest_left_to_sniffing(tmp_path: Path) -> None:
    """A README, a Makefile, a .csv or an unknown extension may be text: the worker reads and sniffs it.
    A .png never is: skipped without being opened."""
    for name in ("ok.md", "data.xyz", "Makefile", "README", "table.csv", "tool.py", "photo.png", "lib.so"):
        write(tmp_path, name)
    result = FolderSource(tmp_path).scan()
    assert sources(result) == ["Makefile", "README", "data.xyz", "ok.md", "table.csv", "tool.py"]
    assert result.skipped == [
        SkippedFile("lib.so", "unsupported file type '.so'"),
        SkippedFile("photo.png", "unsupported file type '.png'"),
    ]


def test_file_over_size_limit_is_skipped_with_size_and_limit(tmp_path: Path) -> None:
    write(tmp_path, "small.txt", "x" * 100)
    write(tmp_path, "big.txt", "x" * 101)
    result = FolderSource(tmp_path, max_file_bytes=100).scan()
    assert sources(result) == ["small.txt"]
    assert reasons(result) == {"big.txt": "file too large: 101 bytes (limit 100 bytes)"}


def test_symlink_outside_root_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = write(tmp_path, "outside/secret.md", "# secret")
    write(root, "inside.md")
    (root / "link.md").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    result = FolderSource(root).scan()
    assert sources(result) == ["inside.md"]
    assert reasons(result) == {
        "link.md": "symlink points outside the folder",
        "linkdir": "symlink points outside the folder",
    }


def test_symlink_loops_and_broken_links(tmp_path: Path) -> None:
    write(tmp_path, "sub/a.md")
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    (tmp_path / "ping.md").symlink_to(tmp_path / "pong.md")
    (tmp_path / "pong.md").symlink_to(tmp_path / "ping.md")
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "gone.md").symlink_to(tmp_path / "missing.md")
    result = FolderSource(tmp_path).scan()  # must terminate
    assert sources(result) == ["sub/a.md"]
    assert reasons(result) == {
        "gone.md": "broken symlink: its target does not exist",
        "ping.md": "symlink loop",
        "pong.md": "symlink loop",
        "self.md": "symlink loop",
        "sub/up": "symlink loop: it points to a folder that contains it",
    }


def test_symlinks_inside_root_are_followed_once(tmp_path: Path) -> None:
    write(tmp_path, "real/a.md")
    write(tmp_path, ".content/b.md")  # hidden folder, reachable only through a link
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "alias2.md").symlink_to(tmp_path / "real" / "a.md")
    (tmp_path / "published").symlink_to(tmp_path / ".content", target_is_directory=True)
    result = FolderSource(tmp_path).scan()
    # "alias" and "alias2.md" are second names for files already listed.
    assert sources(result) == ["published/b.md", "real/a.md"]
    assert result.skipped == []
    assert result.files[0].path == tmp_path / "published" / "b.md"


def test_directory_reachable_through_many_links_is_scanned_once(tmp_path: Path) -> None:
    write(tmp_path, ".store/x.md")
    for name in ("l1", "l2", "l3"):
        (tmp_path / name).symlink_to(tmp_path / ".store", target_is_directory=True)
    assert sources(FolderSource(tmp_path).scan()) == ["l1/x.md"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_skipped_with_reason(tmp_path: Path) -> None:
    locked = write(tmp_path, "locked.md")
    locked.chmod(0)
    try:
        result = FolderSource(tmp_path).scan()
    finally:
        locked.chmod(0o644)
    assert reasons(result) == {"locked.md": "permission denied: the file cannot be read"}


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.txt")
    result = FolderSource(tmp_path).scan()
    assert reasons(result) == {"pipe.txt": "not a regular file"}


def test_missing_root_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RaglineError, match="does not exist: .*nope"):
        FolderSource(missing).scan()


def test_file_as_root_raises(tmp_path: Path) -> None:
    file = write(tmp_path, "a.md")
    with pytest.raises(RaglineError, match="not a folder: .*a.md"):
        FolderSource(file).scan()
