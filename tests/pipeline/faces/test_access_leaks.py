"""Access control, attacked through the real HTTP server (uvicorn on loopback, the real model, Qdrant Edge).

Fifty-six documents in eight folders, readable by overlapping groups; six callers, five by named API key and
one by JWT; over two thousand queries made of the words, codes and paths of documents each caller may not
read, some with filters that name them. Every answer is checked three ways: no search result, no block of
prompt context, and no byte of what the loopback chat server receives comes from a document the caller may
not read. The same queries, asked as an admin, find those documents, so the zero is not for want of trying.
Then bad tokens, non-admin ingest, and a revoked permission after the next sync.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from pipeline.app import Ragline
from pipeline.faces.http import create_app, running_server
from pipeline.faces.identity import key_hash
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import ChatServer, make_app, recording_chat_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "a-shared-secret-for-hs256-tokens-0123456789"
ISSUER, AUDIENCE = "https://idp.example.test", "ragline"
FOLDERS = {  # folder: who may read it, as the rules below say
    "hr": {"group:hr"},
    "eng": {"group:eng"},
    "legal": {"group:legal", "user:dana"},
    "finance": {"group:finance", "group:hr"},
    "sales": {"group:sales", "group:eng"},
    "shared": {"everyone"},
    "private/alice": {"user:alice"},
    "secret": set(),  # no rule: admins alone
}
RULES = [{"path": f"{folder}/**", "allow": sorted(who)} for folder, who in FOLDERS.items() if who]
TOPICS = [
    "The quarterly budget review moves to Thursday and the salary bands are updated",
    "Our onboarding plan covers laptops, badges and the first week schedule",
    "The incident report explains why the build servers stopped deploying",
    "Contract renewal terms and the signed nondisclosure agreement are attached",
    "Expense reports above the travel limit need a manager's approval",
    "The customer pipeline grew after the spring trade fair in Lyon",
    "Performance reviews and promotion decisions are due before the holidays",
]
CALLERS = {  # name: (principals, how the caller is identified)
    "alice": (["user:alice", "group:hr"], "key"),
    "bob": (["user:bob", "group:eng", "group:sales"], "key"),
    "carol": (["user:carol", "group:legal", "group:finance"], "key"),
    "dana": (["user:dana"], "key"),
    "erin": ([], "key"),
    "frank": (["user:frank", "group:eng", "group:hr"], "jwt"),
}
ADMIN_KEY = "admin-key-for-the-leak-test"


@dataclass(frozen=True)
class Doc:
    source: str
    code: str
    text: str


def corpus() -> list[Doc]:
    docs = []
    for n, (folder, topic) in enumerate(itertools.product(FOLDERS, TOPICS)):
        code = f"kx{n:03d}q"
        body = (
            f"{topic.split(' and ')[0]} ({folder.replace('/', ' ')} team). {topic}. The reference code is {code}; "
            f"quote {code} when you write about document {n} of the {folder.split('/')[0]} folder."
        )
        docs.append(Doc(f"{folder}/note-{n:02d}.md", code, f"# Note {n} for {folder}\n\n{body}\n"))
    return docs


DOCS = corpus()


def readable(principals: list[str]) -> set[str]:
    held = {*principals, "everyone"}
    return {d.source for d in DOCS if FOLDERS[d.source.rsplit("/", 1)[0]] & held}


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 3600}
    return jwt.encode({**base, **claims}, key, algorithm=algorithm)


@dataclass
class Caller:
    name: str
    allowed: set[str]
    headers: dict[str, str]


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("leaks") / "share"
    for doc in DOCS:
        path = folder / doc.source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {name: f"key-of-{name}-{os.urandom(8).hex()}" for name in CALLERS}


def leak_config(share: Path, keys: dict[str, str], chat_url: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    named = [
        {"name": name, "sha256": key_hash(keys[name]), "principals": principals}
        for name, (principals, how) in CALLERS.items()
        if how == "key"
    ]
    return {
        "access": {
            "enabled": True,
            "rules": rules,
            "admins": ["group:it"],
            "keys": named,
            "jwt": {"algorithm": "HS256", "issuer": ISSUER, "audience": AUDIENCE, "groups_claim": "groups"},
        },
        "server": {"api_key": ADMIN_KEY, "sources": {"share": str(share)}, "max_top_k": 50},
        "llm": {"base_url": chat_url, "model": "recorder"},
        "prompt": {"max_context_tokens": 4000},
    }


@pytest.fixture(scope="module")
def recorder() -> Iterator[ChatServer]:
    with recording_chat_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    share: Path,
    keys: dict[str, str],
    recorder: ChatServer,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[tuple[Ragline, httpx.Client]]:
    os.environ["RAGLINE_JWT_SECRET"] = SECRET
    app = make_app(tmp_path_factory.mktemp("leak-index"), embedder, **leak_config(share, keys, recorder.url, RULES))
    report = app.ingest(share)
    assert len(report.added) == len(DOCS) == 56
    with running_server(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield app, client
    app.close()
    os.environ.pop("RAGLINE_JWT_SECRET", None)


@pytest.fixture(scope="module")
def callers(keys: dict[str, str]) -> list[Caller]:
    out = []
    for name, (principals, how) in CALLERS.items():
        if how == "key":
            credential = keys[name]
        else:
            user = principals[0].removeprefix("user:")
            credential = token({"sub": user, "groups": [p.removeprefix("group:") for p in principals[1:]]})
        out.append(Caller(name, readable(principals), {"Authorization": f"Bearer {credential}"}))
    return out


def queries() -> list[dict[str, Any]]:
    """Eight requests per document: its code, its words, its title, and filters that name it."""
    out = []
    for n, doc in enumerate(DOCS):
        folder = doc.source.rsplit("/", 1)[0]
        mode = ("hybrid", "bm25", "dense")[n % 3]
        out += [
            {"query": doc.code, "mode": "bm25"},
            {"query": doc.code, "mode": mode},
            {"query": doc.text.split("\n\n")[1][:200], "mode": mode},
            {"query": f"Note {n} for {folder}", "mode": "hybrid"},
            {"query": f"reference code {doc.code}", "filters": {"path": doc.source}},
            {"query": doc.code, "filters": {"fields": {"source": doc.source}}},
            {"query": f"{doc.code} {folder}", "filters": {"path": f"{folder}/**", "file_types": ["md"]}},
            {"query": doc.code, "filters": {"fields": {"access": sorted(FOLDERS[folder] or {"group:it"})[0]}}},
        ]
    return out


def sources_in(data: dict[str, Any]) -> set[str]:
    return {r["source"] for r in data.get("results", [])} | {b["source"] for b in data.get("blocks", [])}


def codes_in(text: str) -> set[str]:
    return {d.code for d in DOCS if d.code in text}


def test_no_caller_reads_a_document_it_may_not(
    served: tuple[Ragline, httpx.Client], callers: list[Caller], recorder: ChatServer
) -> None:
    _, client = served
    asked = queries()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    found_by_admin: dict[int, set[str]] = {}
    for i, request in enumerate(asked):
        data = client.post("/search", json={**request, "top_k": 20, "rerank": False}, headers=admin).json()
        found_by_admin[i] = sources_in(data)
    # the queries have teeth: as an admin, each document's code finds it
    assert all(DOCS[i // 8].source in found_by_admin[i] for i in range(0, len(asked), 8))

    counts = {"requests": 0, "results": 0, "forbidden_seen_by_admin": 0}
    for caller in callers:
        code_of = {d.source: d.code for d in DOCS if d.source not in caller.allowed}
        forbidden_codes = set(code_of.values())
        for i, request in enumerate(asked):
            endpoint = ("/search", "/search", "/context", "/search", "/ask")[i % 5]
            body = {**request, "top_k": 20, "rerank": False}
            before = len(recorder.requests)
            response = client.post(endpoint, json=body, headers=caller.headers)
            assert response.status_code == 200, response.text
            data = response.json()
            counts["requests"] += 1
            counts["results"] += len(data.get("results", []))
            counts["forbidden_seen_by_admin"] += len(found_by_admin[i] - caller.allowed)
            assert sources_in(data) <= caller.allowed, (caller.name, request)
            hidden = forbidden_codes - codes_in(json.dumps(request))  # the question itself is echoed back
            assert not codes_in(json.dumps(data)) & hidden, (caller.name, request)
            sent = json.dumps(recorder.requests[before:])
            assert not codes_in(sent) & hidden, (caller.name, request)
        # and what the caller may read, it finds
        for doc in DOCS:
            if doc.source in caller.allowed:
                data = client.post("/search", json={"query": doc.code, "mode": "bm25"}, headers=caller.headers).json()
                assert doc.source in sources_in(data), (caller.name, doc.source)
    assert counts["requests"] >= 2000 and counts["results"] > 0
    assert counts["forbidden_seen_by_admin"] > 1000  # what the callers were kept from, the admin saw
    assert any(r["body"]["model"] == "recorder" for r in recorder.requests)


def test_stats_and_sources_count_only_what_a_caller_reads(
    served: tuple[Ragline, httpx.Client], callers: list[Caller]
) -> None:
    _, client = served
    for caller in callers:
        stats = client.get("/stats", headers=caller.headers).json()
        assert stats["documents"] == len(caller.allowed) and stats["chunks"] == len(caller.allowed)
        assert stats["location"] == "" and all(r["folder"] == r["label"] for r in stats["roots"])
    admin = client.get("/stats", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert admin["documents"] == len(DOCS) and admin["location"]


def test_a_file_type_error_names_only_types_the_caller_reads(
    served: tuple[Ragline, httpx.Client], callers: list[Caller]
) -> None:
    _, client = served
    erin = next(c for c in callers if c.name == "erin")
    data = client.post("/search", json={"query": "x", "filters": {"file_types": ["xyz"]}}, headers=erin.headers)
    assert data.status_code == 400 and "the index holds md" in data.json()["error"]


def _none_token(claims: dict[str, Any]) -> str:
    import base64

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 3600, **claims}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(body)}."


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        (
            lambda: token({"sub": "mallory", "groups": ["it"]}, key="not-the-secret-but-long-enough-0123456789"),
            "Signature",
        ),
        (lambda: token({"sub": "frank", "groups": ["it"], "exp": int(time.time()) - 60}), "expired"),
        (lambda: token({"sub": "frank", "aud": "another-app"}), "audience"),
        (lambda: token({"sub": "frank", "iss": "https://evil.example"}), "issuer"),
        (lambda: token({"sub": "frank", "nbf": int(time.time()) + 3600}), "not yet valid"),
        (lambda: jwt.encode({"sub": "frank", "iss": ISSUER, "aud": AUDIENCE}, SECRET, algorithm="HS256"), "exp"),
        (lambda: _none_token({"sub": "frank", "groups": ["it"]}), "alg"),
        (lambda: token({"sub": "frank"}, algorithm="HS512"), "alg"),
        (lambda: token({"groups": ["it"]}), "sub"),
        (lambda: token({"sub": "frank", "groups": [1, 2]}), "must be a string"),
        (lambda: token({"sub": " frank", "groups": ["it"]}), "not a principal"),
        (lambda: "key-of-nobody", "unknown API key"),
        (lambda: "", "missing"),
    ],
)
def test_bad_tokens_and_keys_are_refused(served: tuple[Ragline, httpx.Client], credential: Any, reason: str) -> None:
    _, client = served
    headers = {"Authorization": f"Bearer {credential()}"} if credential() else {}
    for method, path, body in (
        ("POST", "/search", {"query": DOCS[0].code}),
        ("POST", "/context", {"query": DOCS[0].code}),
        ("POST", "/ask", {"query": DOCS[0].code}),
        ("GET", "/stats", None),
        ("POST", "/ingest", {"source": "share"}),
    ):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert reason.lower() in response.json()["error"].lower(), response.json()


def test_a_token_from_the_identity_provider_names_an_admin(served: tuple[Ragline, httpx.Client]) -> None:
    _, client = served
    headers = {"Authorization": f"Bearer {token({'sub': 'ivan', 'groups': ['it']})}"}
    data = client.post("/search", json={"query": DOCS[-1].code, "mode": "bm25"}, headers=headers).json()
    assert DOCS[-1].source.startswith("secret/") and DOCS[-1].source in sources_in(data)


def test_only_an_admin_ingests(served: tuple[Ragline, httpx.Client], callers: list[Caller]) -> None:
    _, client = served
    refused = client.post("/ingest", json={"source": "share"}, headers=callers[0].headers)
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    assert client.get("/jobs", headers=callers[0].headers).status_code == 403
    started = client.post("/ingest", json={"source": "share"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert started.status_code == 202


def test_a_revoked_permission_stops_showing_after_the_next_sync(
    tmp_path: Path, share: Path, keys: dict[str, str], recorder: ChatServer, embedder: SentenceTransformerEmbedder
) -> None:
    """Sales is taken from engineering: after the next sync (a payload update, nothing embedded), bob, in eng and
    sales, keeps sales; frank, in eng alone, loses it."""
    os.environ["RAGLINE_JWT_SECRET"] = SECRET
    frank = {"Authorization": f"Bearer {token({'sub': 'frank', 'groups': ['eng', 'hr']})}"}
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    sales = [d for d in DOCS if d.source.startswith("sales/")]
    revoked = [r if r["path"] != "sales/**" else {**r, "allow": ["group:sales"]} for r in RULES]
    for rules, frank_reads in ((RULES, True), (revoked, False)):
        app = make_app(tmp_path / "index", embedder, **leak_config(share, keys, recorder.url, rules))
        report = app.ingest(share)
        if not frank_reads:  # the second sync: only who reads the sales notes changed
            assert report.chunks_written == 0 and report.access_updated == tuple(d.source for d in sales)
        with running_server(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
            for doc in sales:
                for caller, expected in ((frank, frank_reads), (bob, True)):
                    data = client.post("/search", json={"query": doc.code, "mode": "bm25"}, headers=caller).json()
                    assert (doc.source in sources_in(data)) == expected
        app.close()
    os.environ.pop("RAGLINE_JWT_SECRET", None)
