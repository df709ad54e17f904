"""Shared test set-up: no test reaches beyond this machine; the real MiniLM model (loaded once), real Qdrant
Edge folders, tiny models built from a config for plumbing, and a loopback chat server."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import Ragline
from pipeline.config import AppConfig, parse_config
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.weights import packaged_minilm_path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_DOCS = SHARED / "datasets" / "sample_docs"
DEMO_DOCS = REPO / "demo_docs"


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections off this machine, so a test can never depend on the network."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise OSError(f"network access blocked in tests: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", _guarded_create_connection)


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
    if not _is_local(address):
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_create_connection(address, *args, **kwargs)


_real_create_connection = socket.create_connection


@pytest.fixture(scope="session", autouse=True)
def _own_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's own ``~/.cache``: ONNX exports and caches written by the code under test stay in it."""
    import os

    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The default embedder, as a user gets it: MiniLM on its onnx-int8 export."""
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    """MiniLM on PyTorch fp32 (``backend = "torch"``), for what is pinned to its vectors or its own export."""
    from pipeline.config import EmbeddingConfig

    model = SentenceTransformerEmbedder(EmbeddingConfig(backend="torch"))
    model.embed(["warm up"])
    return model


def make_app(index: Path, embedder: SentenceTransformerEmbedder, **sections: dict) -> Ragline:
    """A Ragline on ``index`` that shares the session's loaded model."""
    config: AppConfig = parse_config({"index": {"path": str(index)}, "rerank": {"enabled": False}, **sections})
    app = Ragline(config)
    app.embedder = embedder
    return app


def ingested_app(index: Path, embedder: SentenceTransformerEmbedder, docs: Path, **server: Any) -> Iterator[Ragline]:
    """A Ragline with these ``[server]`` settings and ``docs`` ingested, closed afterwards (``yield from`` it)."""
    app = make_app(index, embedder, server=server)
    app.ingest(docs)
    yield app
    app.close()


@pytest.fixture(scope="module")
def live(rag: Ragline) -> Iterator[Any]:
    """The module's ``rag`` app behind a real uvicorn server on loopback, as an httpx client."""
    import httpx

    from pipeline.faces.http import create_app, running_server

    with running_server(create_app(rag)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    return folder


@pytest.fixture(scope="session")
def demo_app(
    tmp_path_factory: pytest.TempPathFactory, demo_folder: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Ragline]:
    app = make_app(tmp_path_factory.mktemp("demo-index"), embedder)
    app.ingest(demo_folder)
    yield app
    app.close()


def _tiny_bert(folder: Path, classifier: bool) -> Path:
    """A 1-layer, 32-wide BERT with MiniLM's vocabulary, built from a config: plumbing only, never quality."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-logit CrossEncoder folder."""
    return _tiny_bert(tmp_path_factory.mktemp("tiny-ce"), classifier=True)


@pytest.fixture(scope="session")
def tiny_embedder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-dimensional sentence-transformers model folder (mean pooling)."""
    from sentence_transformers import SentenceTransformer, models

    base = tmp_path_factory.mktemp("tiny-st")
    transformer = models.Transformer(str(_tiny_bert(base / "hf", classifier=False)), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, pooling_mode="mean")], device="cpu")
    model.save(str(base / "st"))
    return base / "st"


ANSWER = "Every 8 weeks [1]."
REWRITE_MARK = "Standalone query:"  # the end of the follow-up rewrite prompt (pipeline/stages/followup.py)


@dataclass
class ChatServer:
    url: str
    requests: list[dict[str, Any]]
    rewrite: str = "How long does descaling the Aurora 2 take?"
    """What the server answers to a follow-up rewrite prompt."""
    tokens: tuple[str, ...] = ("Every ", "8 ", "weeks ", "[1].")
    """What it streams, one SSE chunk each, ``delay_s`` apart, to a request with ``"stream": true``."""
    delay_s: float = 0.0
    streamed: int = 0
    """Tokens written to streaming clients; a client that leaves stops it short of ``len(tokens)``."""
    client_left: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A real OpenAI-compatible chat-completions endpoint on loopback with a canned answer (and a canned
    rewrite for follow-up prompts; tokens as Server-Sent Events when asked to stream); it records every
    request (path, Authorization header, JSON body)."""
    with recording_chat_server() as server:
        yield server


@contextmanager
def recording_chat_server() -> Iterator[ChatServer]:
    """The chat server of :func:`chat_server`, for fixtures of a wider scope."""
    import time

    chat = ChatServer("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            chat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            asked = body["messages"][-1]["content"]
            content = chat.rewrite if asked.rstrip().endswith(REWRITE_MARK) else ANSWER
            if body.get("stream"):
                self._stream()
                return
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply.encode())

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for token in chat.tokens:
                    time.sleep(chat.delay_s)
                    delta = {"choices": [{"index": 0, "delta": {"content": token}}]}
                    self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                    self.wfile.flush()
                    chat.streamed += 1
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                chat.client_left.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    chat.url = f"http://127.0.0.1:{server.server_port}/v1"
    yield chat
    server.shutdown()
