"""Search filters: parsing CLI-style strings, field-name validation, glob matching."""

from __future__ import annotations

import pytest

from pipeline.errors import RaglineError
from pipeline.filters import SearchFilter, parse_filter

pytestmark = pytest.mark.unit


def test_parse_filter_full_example() -> None:
    f = parse_filter("docs/", ["PDF", ".md"], ["lang=en", "year=2024"])
    assert f == SearchFilter(path="docs/", file_types=("pdf", "md"), fields=(("lang", "en"), ("year", 2024)))
    assert isinstance(dict(f.fields)["year"], int)
    assert f.empty is False
    assert f.is_glob is False


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("draft=true", "draft", True),
        ("draft=false", "draft", False),
        ("year=-3", "year", -3),
        ('code="2024"', "code", "2024"),  # quoted: stays a string
        ("version=1.5", "version", "1.5"),  # floats are not exact-match values: kept as text
        ("note=null", "note", "null"),
        ("tags=[1, 2]", "tags", "[1, 2]"),
        ("title=a=b", "title", "a=b"),  # only the first "=" separates
        ("  lang =  en  ", "lang", "en"),  # surrounding spaces are trimmed
        ("meta.lang=de", "meta.lang", "de"),  # nested payload path
        ("empty=", "empty", ""),
    ],
)
def test_parse_filter_values(item: str, key: str, value: object) -> None:
    f = parse_filter(fields=[item])
    assert f.fields == ((key, value),)
    assert type(f.fields[0][1]) is type(value)


def test_parse_filter_without_equals_names_the_item() -> None:
    with pytest.raises(RaglineError) as info:
        parse_filter(fields=["lang=en", "noequals"])
    assert "'noequals'" in str(info.value)
    assert "key=value" in str(info.value)


@pytest.mark.parametrize("key", ["text", "a b", "", "1year", "a..b", "lang-code"])
def test_invalid_field_names_rejected(key: str) -> None:
    with pytest.raises(RaglineError) as info:
        SearchFilter(fields=((key, "x"),))
    assert repr(key) in str(info.value)
    assert "not a valid payload field name" in str(info.value)


@pytest.mark.parametrize("item", ["text=hello", "a b=1", "=1"])
def test_invalid_field_names_rejected_through_parse_filter(item: str) -> None:
    with pytest.raises(RaglineError, match="not a valid payload field name"):
        parse_filter(fields=[item])


@pytest.mark.parametrize("key", ["lang", "year", "_private", "meta.lang", "title2"])
def test_valid_field_names_accepted(key: str) -> None:
    assert SearchFilter(fields=((key, 1),)).fields == ((key, 1),)


def test_file_types_normalised() -> None:
    assert parse_filter(file_types=["PDF", ".Md", "", "docx"]).file_types == ("pdf", "md", "docx")


def test_empty_filter() -> None:
    assert parse_filter().empty is True
    assert parse_filter("", [], []).empty is True
    assert parse_filter("", [], []).path is None
    assert parse_filter(file_types=["txt"]).empty is False
    assert parse_filter(fields=["a=1"]).empty is False


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("docs/", False),
        ("docs/report.pdf", False),
        (None, False),
        ("**/*.pdf", True),
        ("docs/*.md", True),
        ("report-?.pdf", True),
        ("ch[0-9].md", True),
    ],
)
def test_is_glob(path: str | None, expected: bool) -> None:
    assert SearchFilter(path=path).is_glob is expected


SOURCES = [
    "a.pdf",
    "a.md",
    "a/x.md",
    "a/x.pdf",
    "a/sub/y.md",
    "b/x.md",
    "xa/y.md",
    "docs/deep/er/report.pdf",
    "docs/report.PDF",
]


def test_matching_sources_any_depth_pdf() -> None:
    assert SearchFilter(path="**/*.pdf").matching_sources(SOURCES) == [
        "a.pdf",
        "a/x.pdf",
        "docs/deep/er/report.pdf",
    ]  # matching is case-sensitive: report.PDF is not selected


def test_matching_sources_folder_glob() -> None:
    # the same rules as the ingest globs: a lone "*" stays within one folder
    assert SearchFilter(path="a/*.md").matching_sources(SOURCES) == ["a/x.md"]


def test_matching_sources_result_is_sorted_and_filtered() -> None:
    assert SearchFilter(path="*.md").matching_sources(["z.md", "b.txt", "a.md"]) == ["a.md", "z.md"]
    assert SearchFilter(path="*.md").matching_sources([]) == []


def test_double_star_slash_matches_whole_names_only() -> None:
    sources = ["README.md", "docs/README.md", "docs/OLD_README.md", "MY_README.md"]
    assert SearchFilter(path="**/README.md").matching_sources(sources) == ["README.md", "docs/README.md"]
