"""Typed settings, one model per stage, read from TOML and validated once at start.

Every model forbids unknown keys, so a typo in the config file is an error that
names the setting instead of a silently ignored value.
"""

from __future__ import annotations

import os
import tomllib
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"


class Fusion(str, Enum):
    """How dense and BM25 candidate lists are combined."""

    RRF = "rrf"
    DBSF = "dbsf"
    WEIGHTED = "weighted"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()
    max_file_mb: float = Field(50.0, gt=0)
    parse_workers: int = Field(0, ge=0, le=64)
    parse_timeout_s: float = Field(60.0, gt=0)
    ocr: Literal["auto", "off", "always"] = "auto"
    """PDF pages read with Tesseract: those with no text layer (auto), every page (always), or none (off)."""
    ocr_languages: tuple[Annotated[str, Field(pattern=r"^[a-z]{3}(_[a-z]+)?$")], ...] = Field(("eng",), min_length=1)
    """Tesseract language codes (eng, deu, fra, chi_sim ...); each needs its tesseract-ocr-LANG package."""


class ChunkingConfig(_Section):
    chunk_tokens: int = Field(200, ge=16, le=8192)
    overlap_tokens: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        return self


InferenceBackend = Literal["torch", "onnx-int8"]
"""``torch``: PyTorch fp32. ``onnx-int8``: the model exported to ONNX and dynamically quantised to int8, run by
ONNX Runtime on CPU (pipeline/models/onnx/export.py)."""


class EmbeddingConfig(_Section):
    model: str = DEFAULT_EMBEDDER
    batch_size: int = Field(32, ge=1, le=4096)
    device: str = "cpu"
    backend: InferenceBackend = "onnx-int8"
    """``onnx-int8`` on the CPU unless set: it ingests about 2.4x faster than PyTorch fp32 and ranks within
    0.0035 of it on every development set (docs/evaluation.md). A GPU ``device`` with no backend set runs
    ``torch``."""

    @model_validator(mode="before")
    @classmethod
    def _torch_on_a_gpu(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backend" not in data and data.get("device", "cpu") != "cpu":
            return {**data, "backend": "torch"}
        return data

    @model_validator(mode="after")
    def _int8_on_cpu(self) -> EmbeddingConfig:
        if self.backend == "onnx-int8" and self.device != "cpu":
            raise ValueError(
                f'backend "onnx-int8" runs on the CPU only: set backend = "torch" for device {self.device!r}, '
                'or device = "cpu"'
            )
        return self


class BM25Config(_Section):
    k1: float = Field(1.2, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    avg_len: float = Field(100.0, gt=0)
    """The chunk length (in BM25 terms) that length normalisation is relative to: fixed, as in Qdrant's own
    BM25, so a point written today and one written a year and many syncs ago are on the same scale (a
    collection average would move with every sync, and points already written are never updated). Chunks
    are cut to a fixed size, so their average stays near this; saved with the index."""


class RetrievalConfig(_Section):
    top_k: int = Field(10, ge=1, le=1000)
    # Chosen jointly on the Debian folder, the demo/sample questions and SciFact train (docs/evaluation.md).
    candidates: int = Field(400, ge=1, le=10000)
    fusion: Fusion = Fusion.WEIGHTED
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.7, ge=0, le=1)
    min_dense_range: float = Field(0.2, ge=0, le=2)
    """Weighted fusion scales the dense scores by their range, taken as at least this (cosine), so the
    near-equal scores of near-identical documents are not stretched to outvote BM25's exact match."""
    document_weight: float = Field(0.25, ge=0)
    """How much a chunk gains from its document's other strong candidates (pipeline/retrieval/documents.py);
    0: each chunk on its own."""
    document_chunks: int = Field(3, ge=1, le=100)
    """How many of a document's best candidates make its evidence."""
    document_candidates: int = Field(50, ge=1, le=10000)
    """How many of the first fused candidates document-aware ranking weighs and caps; those below follow in
    fused order (in an index from before document-keyed chunk ids, their documents cost a payload read each)."""
    max_per_document: int = Field(3, ge=0, le=1000)
    """At most this many chunks of one document in the results (more only when nothing else is left); 0: no cap."""
    collapse_copies: bool = True
    """A result whose text equals a better result's (a copied file, a repeated paragraph) is not a result of its
    own: the better one lists it in ``copies``, and the next different chunk takes its place."""
    exact: bool = False
    low_confidence: float = Field(0.5, ge=0, le=1)
    """A search whose confidence is under this says ``low_confidence: true``, and its prompt warns the model.
    The confidence is a fitted probability, so 0.5 flags a first result more likely wrong than right."""
    highlights: int = Field(2, ge=0, le=20)
    """Each result's evidence spans: at most this many of its sentences that best match the query; 0: none."""
    tuned: bool = True
    """Use the settings ``ragline tune`` saved with the index for those of ``TUNABLE`` this config does not set."""


TUNABLE = ("fusion", "rrf_k", "dense_weight", "candidates", "document_weight", "document_chunks")
"""The ranking settings ``ragline tune`` chooses and saves; the rest of ``[retrieval]`` stays as configured."""


class RerankConfig(_Section):
    enabled: bool = True
    model: str = DEFAULT_RERANKER
    candidates: int = Field(30, ge=1, le=1000)
    top_n: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(512, ge=8)
    on_failure: Literal["continue", "stop"] = "continue"
    backend: InferenceBackend = "torch"


DEFAULT_TEMPLATE = (
    "Answer the question using only the numbered context blocks below. "
    "Cite the blocks you use as [1], [2], ... If the context does not contain the answer, say so.\n\n"
    "{context}\n\nQuestion: {question}\nAnswer:"
)


class PromptConfig(_Section):
    max_context_tokens: int = Field(1500, ge=32)
    merge_adjacent: bool = True
    best_sentences: int = Field(0, ge=0, le=100)
    """Cut each context block to its this many sentences that best match the question (the parts left out
    shown as "…"), so more sources fit the budget; 0: whole blocks."""
    template: str = DEFAULT_TEMPLATE

    @model_validator(mode="after")
    def _template_fields(self) -> PromptConfig:
        for name in ("{context}", "{question}"):
            if name not in self.template:
                raise ValueError(f"template must contain {name}")
        try:
            self.template.format(context="", question="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"template has a placeholder other than {{context}} and {{question}}: {exc} "
                "(write {{ and }} for literal braces)"
            ) from None
        return self


class LLMConfig(_Section):
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(60.0, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


HNSW_EF = 256
"""The dense search breadth both stores use unless configured (``bench/scale.py`` measures the choice)."""


class IndexConfig(_Section):
    path: str = ".ragline"
    min_free_mb: float = Field(64.0, ge=0)
    """Refuse to write the embedded index when its disk has less free space than this (plus the batch):
    Qdrant Edge writes through memory maps, and a write that finds the disk full kills the process."""
    quantization: Literal["none", "int8"] = "none"
    """Qdrant's scalar quantization of the embedded index's dense vectors: int8 copies (a quarter of the
    memory) searched first, the best ``oversampling`` x limit rescored with the full vectors. Set when the
    index is created (``[qdrant] quantization`` for a server collection)."""
    oversampling: float = Field(2.0, ge=1.0, le=10.0)
    hnsw_ef: int = Field(HNSW_EF, ge=0, le=4096)
    """How many neighbours a dense search explores in the HNSW graph (Qdrant's ``hnsw_ef``): more finds the
    exact nearest chunks more often at a larger index, for a little more time; 0: Qdrant's default (the
    graph's ``ef_construct``, 100). Read at search time."""
    on_disk: bool = False
    """Keep the embedded index's full dense vectors, BM25 inverted index and payloads on disk (memory-mapped),
    not in RAM; with int8 quantization, only the int8 copies and the HNSW graph stay in RAM. Set when the index
    is created."""


class QdrantConfig(_Section):
    """A Qdrant server or cluster. Empty ``url``: the embedded Qdrant Edge index in ``index.path``."""

    url: str = ""
    api_key_env: str = "QDRANT_API_KEY"
    collection: str = Field("ragline", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    prefer_grpc: bool = False
    grpc_port: int = Field(6334, ge=1, le=65535)
    timeout_s: float = Field(30.0, gt=0)
    shard_number: int = Field(1, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1, le=100)
    write_consistency_factor: int = Field(1, ge=1, le=100)
    on_disk: bool = False
    """Keep dense vectors, the BM25 inverted index and payloads on disk (memory-mapped) instead of in RAM."""
    quantization: Literal["none", "int8"] = "none"
    """Qdrant's scalar quantization of the dense vectors: int8 copies (a quarter of the memory) kept in RAM,
    searched first, then the best ``oversampling`` × limit rescored with the full vectors."""
    oversampling: float = Field(2.0, ge=1.0, le=10.0)
    hnsw_ef: int = Field(HNSW_EF, ge=0, le=4096)
    """How many neighbours a dense search explores (Qdrant's ``hnsw_ef``; 0: the collection's default)."""
    write_batch_points: int = Field(256, ge=1, le=100_000)
    """A sync's writes go in requests of at most this many points ..."""
    write_batch_mb: float = Field(8.0, gt=0, le=32)
    """... and about this many megabytes (Qdrant refuses requests over 32 MB)."""
    write_retries: int = Field(5, ge=0, le=20)
    """Retries of a write that failed for a passing reason (5xx, 429, timeout, dropped connection), with
    backoff from ``retry_backoff_s`` doubling to 8 s; points are written by id, so a retry is harmless."""
    retry_backoff_s: float = Field(0.5, ge=0, le=60)

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class ServerConfig(_Section):
    """``ragline serve``: the HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str = ""
    """Bearer key; RAGLINE_API_KEY in the environment takes precedence. Empty: no auth."""
    sources: dict[str, str] = {}
    """Folders POST /ingest may sync, by name: {"docs" = "/srv/docs"}. Requests name one; never a path."""
    max_query_chars: int = Field(2000, ge=1)
    max_top_k: int = Field(100, ge=1, le=1000)
    max_body_bytes: int = Field(65536, ge=1024)
    max_concurrent: int = Field(64, ge=1, le=10000)
    """Requests in flight at once; more are refused at once with 503 (and Retry-After), never queued."""
    watch: bool = False
    """Follow the ``sources`` folders: sync each at start, then what their file events name."""
    watch_quiet_ms: int = Field(300, ge=10, le=60_000)
    """A burst of file events ends (and its one sync starts) once this long passes with no new event."""
    metrics: Literal["key", "open", "off"] = "key"
    """``/metrics``: "key" asks for the same bearer credential as the API (any valid caller); "open": no
    credential (for a scraper on a private network); "off": not served."""


PRINCIPAL = r"^(everyone|(user|group):[^\x00-\x20](?:[^\x00-\x1f]{0,198}[^\x00-\x20])?)$"
"""Who may read a document: ``everyone``, ``user:NAME`` or ``group:NAME`` (pipeline/access.py). A name may hold
spaces, as identity providers' group names do ("HR Team"), but not begin or end with one, nor hold control
characters."""
Principal = Annotated[str, Field(pattern=PRINCIPAL)]


class AccessRule(_Section):
    """Files whose path matches ``path`` may be read by ``allow``. ``path`` is a glob as in ``[source]
    include``: over the path under the synced folder, or, when it starts with ``/``, over the absolute path."""

    path: str = Field(min_length=1, max_length=1000)
    allow: tuple[Principal, ...] = ()


class ApiKey(_Section):
    """A named API key of the HTTP API: only its SHA-256 is kept (``ragline access key`` makes one)."""

    name: str = Field(min_length=1, max_length=200)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    principals: tuple[Principal, ...] = ()


class JwtConfig(_Section):
    """Bearer JWTs from the company's identity provider, verified with PyJWT. Empty ``algorithm``: none accepted."""

    algorithm: Literal["", "HS256", "RS256", "ES256"] = ""
    secret_env: str = "RAGLINE_JWT_SECRET"
    """HS256: the environment variable that holds the shared secret (never the secret here)."""
    public_key_file: str = ""
    """RS256 / ES256: the identity provider's public key (PEM)."""
    issuer: str = ""
    audience: str = ""
    user_claim: str = Field("sub", min_length=1)
    groups_claim: str = Field("groups", min_length=1)
    leeway_s: float = Field(0.0, ge=0, le=600)

    @model_validator(mode="after")
    def _key_for_algorithm(self) -> JwtConfig:
        if self.algorithm in ("RS256", "ES256") and not self.public_key_file:
            raise ValueError(f"algorithm {self.algorithm} needs public_key_file (the identity provider's PEM key)")
        if self.algorithm and not (self.issuer and self.audience):
            raise ValueError("JWTs are checked against an issuer and an audience: set both")
        return self


class AccessConfig(_Section):
    """Who may read what. Off: every caller sees every document. On: a document is visible only to the
    principals its access rules (and, with ``from_posix``, its owner, group and mode) give it, and to admins."""

    enabled: bool = False
    from_posix: bool = False
    rules: tuple[AccessRule, ...] = ()
    """Ordered: the first rule whose path matches a file gives its principals."""
    admins: tuple[Principal, ...] = ()
    """Callers holding any of these may ingest and see everything."""
    keys: tuple[ApiKey, ...] = ()
    jwt: JwtConfig = JwtConfig()


class AppConfig(_Section):
    index: IndexConfig = IndexConfig()
    source: SourceConfig = SourceConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    bm25: BM25Config = BM25Config()
    retrieval: RetrievalConfig = RetrievalConfig()
    rerank: RerankConfig = RerankConfig()
    prompt: PromptConfig = PromptConfig()
    llm: LLMConfig = LLMConfig()
    qdrant: QdrantConfig = QdrantConfig()
    server: ServerConfig = ServerConfig()
    access: AccessConfig = AccessConfig()


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    value = first.get("input")
    shown = "" if isinstance(value, dict) or first["type"] == "missing" else f" (got {value!r})"
    more = len(error.errors()) - 1
    tail = f"; and {more} more problem(s)" if more else ""
    return f"{origin}: {where}: {message}{shown}{tail}"


def parse_config(data: dict[str, Any], origin: str = "config") -> AppConfig:
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read a TOML config; no path means built-in defaults (plus RAGLINE_INDEX)."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        file = Path(path)
        origin = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not UTF-8 text (TOML files are UTF-8)") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {file} is a folder, not a TOML file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    config = parse_config(data, origin)
    if path is not None and config.server.sources:
        config = _sources_beside(config, Path(path).parent)
    env_index = os.environ.get("RAGLINE_INDEX")
    if env_index:
        config = with_index(config, env_index)
    return config


def _sources_beside(config: AppConfig, folder: Path) -> AppConfig:
    """``[server] sources`` with relative folders read against the config file's folder, not the working
    directory the server happens to start in."""
    sources = {
        name: str(path if path.is_absolute() else (folder / path).resolve())
        for name, path in ((name, Path(raw).expanduser()) for name, raw in config.server.sources.items())
    }
    return config.model_copy(update={"server": config.server.model_copy(update={"sources": sources})})


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/ragline`` (default ``~/.cache/ragline``): model exports, vector caches, eval indexes."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragline"


def with_index(config: AppConfig, path: str | Path) -> AppConfig:
    return config.model_copy(update={"index": config.index.model_copy(update={"path": str(path)})})


def config_to_dict(config: AppConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
