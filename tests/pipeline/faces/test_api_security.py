"""API security, against a real uvicorn server on loopback: filters are bounded, flat data validated
before any store sees them; every error is a one-line JSON ``error``, never a 500; ``/ingest`` syncs
only configured folders and never follows a symlink out of one; a schemathesis fuzz of the OpenAPI
schema finds no 5xx. (Auth, the body-size limit and query/top_k bounds are in test_server.py.)"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.app import Ragline
from pipeline.errors import RaglineError
from pipeline.faces.http import create_app, running_server
from pipeline.faces.http.schemas import MAX_FIELD_KEY, MAX_FIELD_VALUE, MAX_FILTER_FIELDS, MAX_FILTER_PATH
from pipeline.filters import MAX_GLOB_WILDCARDS, MAX_SEGMENT_STARS, SearchFilter, parse_filter
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.stores.schema import PAYLOAD_FIELDS
from tests.conftest import DEMO_DOCS, ChatServer, ingested_app, make_app

pytestmark = pytest.mark.integration

KEY = "security-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {**AUTH, "Content-Type": "application/json"}
OUTSIDE_WORD = "quetzalcoatlite"  # only in a file outside every source folder
INSIDE_WORD = "marmelosanthemum"  # only in a file inside the source folder


def one_line_error(response: httpx.Response) -> str:
    """The body of an error response: a JSON object whose ``error`` is one non-empty line."""
    assert response.headers["content-type"] == "application/json", response.text[:200]
    body = response.json()
    assert isinstance(body, dict) and set(body) <= {"error", "detail"}, body
    error = body["error"]
    assert isinstance(error, str) and error and "\n" not in error, body
    return error


@pytest.fixture(scope="module")
def docs(demo_folder: Path) -> Path:
    return demo_folder


@pytest.fixture(scope="module")
def rag(
    tmp_path_factory: pytest.TempPathFactory, docs: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Ragline]:
    yield from ingested_app(
        tmp_path_factory.mktemp("security-index"), embedder, docs, api_key=KEY, sources={"handbook": str(docs)}
    )


def search(live: httpx.Client, filters: Any) -> httpx.Response:
    return live.post("/search", json={"query": "vacation days", "filters": filters}, headers=AUTH)


# -- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        (
            {"fields": {f"f{i}": i for i in range(MAX_FILTER_FIELDS + 1)}},
            f"filters.fields: Dictionary should have at most {MAX_FILTER_FIELDS} items",
        ),
        (
            {"path": "a" * (MAX_FILTER_PATH + 1)},
            f"filters.path: String should have at most {MAX_FILTER_PATH} characters",
        ),
        ({"fields": {"k" * (MAX_FIELD_KEY + 1): "v"}}, f"String should have at most {MAX_FIELD_KEY} characters"),
        (
            {"fields": {"author": "v" * (MAX_FIELD_VALUE + 1)}},
            f"filters.fields.author.str: String should have at most {MAX_FIELD_VALUE} characters",
        ),
        ({"fields": {"": "v"}}, "String should have at least 1 character"),
        ({"file_types": ["md"] * 51}, "filters.file_types: List should have at most 50 items"),
        # filters are flat: no nested objects, lists or nulls as values, no operators, no Qdrant syntax
        ({"fields": {"author": {"name": "x"}}}, "filters.fields.author: Input should be a string, integer or boolean"),
        ({"fields": {"author": ["x", "y"]}}, "filters.fields.author: Input should be a string, integer or boolean"),
        ({"fields": {"author": None}}, "filters.fields.author: Input should be a string, integer or boolean"),
        ({"fields": {"version": 1.5}}, "filters.fields.version: Input should be a string, integer or boolean"),
        ({"path": {"$regex": ".*"}}, "filters.path: Input should be a valid string"),
        ({"must": [{"key": "source", "match": {"value": "x"}}]}, "filters.must: Extra inputs are not permitted"),
        ({"fields": [["author", "x"]]}, "filters.fields: Input should be a valid dictionary"),
        # Qdrant stores 64-bit integers; a larger match value was a 500 (an OverflowError in the engine)
        ({"fields": {"n": 2**63}}, "filters.fields.n.int: Input should be less than 9223372036854775808"),
        ({"fields": {"n": -(2**63) - 1}}, "filters.fields.n.int: Input should be greater than or equal to -92233"),
    ],
    ids=[
        "too-many-fields",
        "long-path",
        "long-key",
        "long-value",
        "empty-key",
        "too-many-types",
        "object-value",
        "list-value",
        "null-value",
        "float-value",
        "operator-path",
        "qdrant-syntax",
        "fields-as-list",
        "int-over-64-bit",
        "int-under-64-bit",
    ],
)
def test_filter_bounds_are_422_naming_the_field(live: httpx.Client, filters: Any, error: str) -> None:
    response = search(live, filters)
    assert response.status_code == 422
    assert error in one_line_error(response)


def test_filters_at_their_limits_are_accepted(live: httpx.Client) -> None:
    known = sorted(PAYLOAD_FIELDS)[: MAX_FILTER_FIELDS - 2]
    fields: dict[str, Any] = {name: "v" * MAX_FIELD_VALUE for name in known} | {"size": 2**63 - 1, "n_tokens": True}
    response = search(live, {"path": "x" * MAX_FILTER_PATH, "file_types": ["md"] * 50, "fields": fields})
    assert response.status_code == 200 and response.json()["results"] == []
    # A field no chunk can have is a mistake named in one line, whatever its length.
    unknown = search(live, {"fields": {"k" * MAX_FIELD_KEY: "v"}})
    assert unknown.status_code == 400 and "unknown filter field 'kkk" in one_line_error(unknown)
    assert search(live, {"fields": {"page_start": -(2**63)}}).status_code == 200
    for glob in ("**", "**/*.md", "**/*hand*book*.md", "**/**/**/*.md"):  # within the glob limits
        assert search(live, {"path": glob}).status_code == 200, glob
    handbook = search(live, {"path": "**/*hand*book*.md"}).json()["results"]
    assert handbook and {r["source"] for r in handbook} == {"employee-handbook.md"}


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("[z-a].md", "filter path '[z-a].md' is not a valid glob: bad character range z-a"),  # was a 500 (re.error)
        ("*a" * 10 + "b", f"has 10 wildcards (*, ?, [); at most {MAX_GLOB_WILDCARDS}"),  # a slow regex otherwise
        ("**/" * 20 + "x.md", f"has 40 wildcards (*, ?, [); at most {MAX_GLOB_WILDCARDS}"),
        ("docs/*a*a*a*b.md", f"has 4 '*' in one folder or file name; at most {MAX_SEGMENT_STARS}"),
    ],
    ids=["bad-range", "many-stars", "many-folder-stars", "stars-in-one-name"],
)
def test_bad_globs_are_400_not_500(live: httpx.Client, path: str, error: str) -> None:
    response = search(live, {"path": path})
    assert response.status_code == 400 and error in one_line_error(response)


def test_filter_checks_hold_outside_the_api_too() -> None:
    """The CLI builds the same SearchFilter: the same checks, before any store."""
    with pytest.raises(RaglineError, match="out of the 64-bit integer range"):
        parse_filter(fields=["n=99999999999999999999"])
    with pytest.raises(RaglineError, match="not a valid glob"):
        parse_filter(path="docs/[9-0]*.md")
    with pytest.raises(RaglineError, match="must be a string, integer or boolean"):
        SearchFilter(fields=(("author", ["x"]),))
    assert SearchFilter(path="docs/**/*.md").is_glob


def test_deeply_nested_bodies_are_4xx_never_500(live: httpx.Client) -> None:
    # within the 64 KiB body limit; json.loads gives up with a RecursionError, which FastAPI makes a 400
    for opener, closer, depth in (("[", "]", 20_000), ('{"a":', "}", 10_000)):
        for tail in ("1" + closer * depth + "}}}", ""):  # balanced, and cut off
            body = '{"query": "x", "filters": {"fields": {"a": ' + opener * depth + tail
            response = live.post("/search", content=body, headers=JSON)
            assert response.status_code == 400, response.text[:200]
            assert one_line_error(response) == "request body is nested too deeply to parse"
    # nested deep enough to hurt an encoder, shallow enough to parse: refused, and not echoed back
    parsed = '{"query": "x", "filters": {"fields": {"a": ' + "[" * 500 + "]" * 500 + "}}}"
    response = live.post("/search", content=parsed, headers=JSON)
    assert response.status_code == 422
    assert one_line_error(response) == "filters.fields.a: Input should be a string, integer or boolean"
    extra = '{"query": "x", "extra": ' + "[" * 500 + "]" * 500 + "}"
    response = live.post("/search", content=extra, headers=JSON)
    assert response.status_code == 422 and one_line_error(response) == "extra: Extra inputs are not permitted"
    assert "input" not in response.json()["detail"][0]


def test_unencodable_and_multiline_input_gives_a_clean_error(live: httpx.Client) -> None:
    """A lone surrogate (valid JSON escape, invalid Unicode) was a 500: the 422 echoed it back unencodable."""
    query = live.post("/search", content=b'{"query": "descale \\ud800"}', headers=JSON)
    assert query.status_code == 422
    assert (
        one_line_error(query) == "query: Input should be a valid string, unable to parse raw data as a unicode string"
    )
    key = live.post("/search", content=b'{"query": "x", "filters": {"fields": {"\\udfff\\n": 1}}}', headers=JSON)
    assert key.status_code == 422  # the key shown escaped, on one line
    assert one_line_error(key).endswith(
        "\\n.[key]: Input should be a valid string, unable to parse raw data as a unicode string"
    )
    newline = search(live, {"fields": {"a\nb": "x"}})
    assert newline.status_code == 400
    assert one_line_error(newline) == "filter field 'a\\nb' is not a valid payload field name"
    not_utf8 = live.post("/search", content=b'{"query": "caf\xe9"}', headers=JSON)
    assert not_utf8.status_code == 400 and one_line_error(not_utf8) == "request body is not valid UTF-8"
    not_json = live.post("/search", content=b"{query: x}", headers=JSON)
    assert not_json.status_code == 422 and one_line_error(not_json) == (
        "the request body is not valid JSON at character 1: Expecting property name enclosed in double quotes"
    )
    cut_short = live.post("/search", content=b'{"query": "descale", "top_k": ', headers=JSON)
    assert one_line_error(cut_short) == "the request body is not valid JSON at character 30: Expecting value"


def test_a_body_not_sent_as_json_is_415_not_500(live: httpx.Client) -> None:
    """Found by the fuzz: FastAPI leaves a non-JSON body as bytes, and the 422 that echoed it back
    could not be encoded (a 500 on every POST). ``curl -d`` without a header sends a form type."""
    body = b'{"query": "How often should I descale?"}'
    for content_type in ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded", None):
        headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
        for path in ("/search", "/context", "/ask", "/ingest"):
            response = live.post(path, content=body, headers=headers)
            assert response.status_code == 415, (content_type, path, response.text[:200])
            assert one_line_error(response) == "the request body must be JSON (Content-Type: application/json)"


def test_routing_errors_use_the_same_error_shape(live: httpx.Client) -> None:
    missing = live.get("/nowhere", headers=AUTH)
    assert missing.status_code == 404 and one_line_error(missing) == "Not Found"
    wrong_method = live.get("/search", headers=AUTH)
    assert wrong_method.status_code == 405 and one_line_error(wrong_method) == "Method Not Allowed"
    assert wrong_method.headers["allow"] == "POST"
    long_job = live.get(f"/jobs/{'j' * 201}", headers=AUTH)
    assert long_job.status_code == 422 and "job_id: String should have at most 200 characters" in one_line_error(
        long_job
    )


def test_an_unexpected_exception_is_a_json_500_without_a_traceback(rag: Ragline) -> None:
    """The last resort, for a bug no test has found yet: the same error shape, nothing internal shown."""
    from fastapi.testclient import TestClient

    app = create_app(rag)

    def broken() -> None:
        raise RuntimeError("secret internal state")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert response.status_code == 500 and response.json() == {"error": "internal server error"}


def test_openapi_schema_shows_the_filter_limits(live: httpx.Client) -> None:
    schemas = live.get("/openapi.json").json()["components"]["schemas"]
    filters = schemas["Filters"]
    assert filters["additionalProperties"] is False
    props = filters["properties"]
    assert props["path"]["anyOf"][0] == {"type": "string", "maxLength": MAX_FILTER_PATH}
    assert props["file_types"]["maxItems"] == 50 and props["file_types"]["items"]["maxLength"] == 200
    fields = props["fields"]
    assert fields["maxProperties"] == MAX_FILTER_FIELDS
    assert fields["propertyNames"] == {"minLength": 1, "maxLength": MAX_FIELD_KEY}
    kinds = fields["additionalProperties"]["oneOf"]
    assert [k["type"] for k in kinds] == ["string", "integer", "boolean"]  # scalars only: no nesting
    assert kinds[0]["maxLength"] == MAX_FIELD_VALUE and kinds[1]["exclusiveMaximum"] == 2**63
    assert schemas["IngestRequest"]["properties"]["source"]["maxLength"] == 200


# -- ingest sources --------------------------------------------------------------------------------


def test_ingest_accepts_only_configured_source_names(live: httpx.Client, docs: Path) -> None:
    """A request names a configured source; a path, a relative escape or the name of a real folder is a 404."""
    refused = ["../", "../../etc", "/etc", "/", str(docs), str(docs.parent), "docs", "./handbook", "handbook/"]
    refused += ["handbook/..", "../handbook", "HANDBOOK", " handbook", "handbook\x00", "*", "~", "%2e%2e%2f"]
    for source in refused:
        response = live.post("/ingest", json={"source": source}, headers=AUTH)
        assert response.status_code == 404, source
        assert one_line_error(response) == f"unknown source {source!r}; known sources: handbook"
    for body in ({"source": ["handbook"]}, {"source": None}, {"source": {"path": "/etc"}}, {"source": "h" * 201}):
        response = live.post("/ingest", json=body, headers=AUTH)
        assert response.status_code == 422, body
        assert one_line_error(response).startswith("source: ")
    with_path = live.post("/ingest", json={"source": "handbook", "folder": "/etc"}, headers=AUTH)
    assert with_path.status_code == 422 and one_line_error(with_path) == "folder: Extra inputs are not permitted"
    assert live.get("/stats", headers=AUTH).json()["last_sync"]["job"] is None  # no job synced anything


def run_job(client: httpx.Client, source: str) -> dict[str, Any]:
    started = client.post("/ingest", json={"source": source})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while (job := client.get(f"/jobs/{started.json()['id']}").json())["status"] in {"queued", "running"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return dict(job)


def test_ingest_never_follows_a_symlink_out_of_the_source(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"The vault passphrase is {OUTSIDE_WORD}. Keep it out of every index.\n")
    folder = tmp_path / "source"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text(f"The greenhouse grows {INSIDE_WORD} along the north wall.\n")
    (folder / "sub" / "more.txt").write_text("The greenhouse is watered every morning at seven.\n")
    (folder / "secret-link.txt").symlink_to(outside / "secret.txt")  # absolute, out
    (folder / "sub" / "relative-link.txt").symlink_to(Path("..") / ".." / "outside" / "secret.txt")  # relative, out
    (folder / "outside-dir").symlink_to(outside, target_is_directory=True)  # a folder out
    (folder / "loop-a.txt").symlink_to(folder / "loop-b.txt")  # a loop of links
    (folder / "loop-b.txt").symlink_to(folder / "loop-a.txt")
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)  # a folder loop
    app = make_app(tmp_path / "index", embedder, server={"api_key": KEY, "sources": {"docs": str(folder)}})
    with (
        running_server(create_app(app)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
    ):
        job = run_job(client, "docs")
        assert job["status"] == "done", job
        assert job["summary"]["added"] == 2
        assert job["summary"]["skipped"] == [
            {"source": "loop-a.txt", "reason": "symlink loop"},
            {"source": "loop-b.txt", "reason": "symlink loop"},
            {"source": "outside-dir", "reason": "symlink points outside the folder"},
            {"source": "secret-link.txt", "reason": "symlink points outside the folder"},
            {"source": "sub/back", "reason": "symlink loop: it points to a folder that contains it"},
            {"source": "sub/relative-link.txt", "reason": "symlink points outside the folder"},
        ]
        assert client.get("/stats").json()["documents"] == 2
        for mode in ("bm25", "hybrid", "dense"):
            hits = client.post("/search", json={"query": f"vault passphrase {OUTSIDE_WORD}", "mode": mode}).json()
            assert all(OUTSIDE_WORD not in hit["text"] for hit in hits["results"]), mode
            assert {hit["source"] for hit in hits["results"]} <= {"notes.txt", "sub/more.txt"}
        found = client.post("/search", json={"query": INSIDE_WORD, "mode": "bm25"}).json()["results"]
        assert [hit["source"] for hit in found] == ["notes.txt"]  # the search itself works
    app.close()


# -- fuzz ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_schemathesis_fuzz_finds_no_server_error(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, chat_server: ChatServer
) -> None:
    """Every operation of the real app, with the key sent: schemathesis' coverage cases (boundary and
    invalid values, each wrong method) and hypothesis-generated valid and invalid requests. No 5xx, and
    every error is a one-line JSON ``error``. [llm] points at a real (canned) endpoint, so /ask answers
    200 rather than its deliberate 503; /ingest has one small source, so a job it starts is harmless."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    small = tmp_path / "small"
    small.mkdir()
    (small / "note.txt").write_text("The rooftop garden opens every Friday at noon.\n")
    app = make_app(
        tmp_path / "index",
        embedder,
        server={"api_key": KEY, "sources": {"small": str(small)}},
        llm={"base_url": chat_server.url, "model": "tiny-chat"},
    )
    app.ingest(DEMO_DOCS)
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started = time.monotonic()

    with running_server(create_app(app)) as url, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        loaded = list(schema.get_all_operations())
        operations = [result.ok() for result in loaded if isinstance(result, Ok)]
        assert len(operations) == len(loaded) == 8  # every operation of the schema loaded

        def check(case: Any) -> None:
            response = case.call(base_url=url, session=session, headers=AUTH, timeout=60)
            sent[case.operation.label] += 1
            statuses[response.status_code] += 1
            problem = None
            if response.status_code >= 500:
                problem = "server error"
            elif response.status_code >= 400:
                try:
                    body = response.json()
                    ok = isinstance(body, dict) and isinstance(body.get("error"), str) and "\n" not in body["error"]
                except ValueError:
                    ok = False
                problem = None if ok else "error body is not a one-line JSON error"
            if problem:
                failures.append(f"{problem}: {response.status_code} {response.text[:300]}\n  {case.as_curl_command()}")

        for operation in operations:  # deterministic: each bound, each bound + 1, wrong types, other methods
            config = schema.config.generation_for(operation=operation, phase="coverage")
            for case in schema.iter_coverage_cases(
                operation, generation_modes=list(GenerationMode), generation_config=config
            ):
                check(case)
        coverage = sum(sent.values())
        # hypothesis: valid requests, and invalid ones (which may also drop the key: some 401s)
        for operation in operations:
            for mode in GenerationMode:
                if mode is GenerationMode.NEGATIVE and operation.label == "GET /health":
                    continue  # no parameters, no body, no auth: nothing in it can be invalid (Unsatisfiable)

                @settings(
                    max_examples=25,
                    deadline=None,
                    derandomize=True,  # the same requests every run
                    database=None,
                    phases=[Phase.generate],  # failures are collected, not raised: nothing to shrink
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def fuzz(case: Any) -> None:
                    check(case)

                fuzz()
    app.close()

    total = sum(sent.values())
    print(
        f"\nschemathesis: {total} requests ({coverage} coverage, {total - coverage} generated) over"
        f" {len(operations)} operations in {time.monotonic() - started:.1f} s; per operation {dict(sent)};"
        f" statuses {dict(sorted(statuses.items()))}"
    )
    assert set(sent) == {op.label for op in operations}
    assert total >= 200
    assert not failures, f"{len(failures)} bad responses:\n" + "\n".join(failures[:10])
    assert statuses[200] > 0 and statuses[202] > 0 and statuses[422] > 0  # it reached the handlers, not only 4xx
    assert chat_server.requests  # /ask went all the way to the LLM
