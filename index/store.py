"""The index folder on disk: versions, the CURRENT pointer, atomic publishing, loading.

Layout::

    INDEX_DIR/
      CURRENT                 name of the published version (replaced atomically)
      .rebuild.lock           held by the one rebuild allowed at a time
      versions/<name>/        manifest.json, meta.sqlite, vectors.npy, dense.faiss, bm25/
      versions/.tmp-<name>/   a version being written; never read

A rebuild writes a complete new version, renames it into place and only then swaps CURRENT
with `os.replace`, so a rebuild that fails or is killed at any point leaves the previous
version published and searchable. Readers open whatever CURRENT names and keep using it
while newer versions appear (`index.live` swaps them in).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from . import ann
from .embedder import canonical_model_name
from .errors import IndexMismatch, IndexNotBuilt, RebuildBusy
from .lexical import LexicalIndex
from .models import Article, Chunk

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT = "CURRENT"
VERSIONS = "versions"
LOCK = ".rebuild.lock"
TMP_PREFIX = ".tmp-"

SCHEMA = """
CREATE TABLE articles (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    url TEXT,
    date TEXT,
    hash TEXT NOT NULL,
    text TEXT NOT NULL,
    first_chunk INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY,          -- FAISS id, vectors.npy row and BM25 document number
    article_row INTEGER NOT NULL REFERENCES articles(row),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,           -- character offsets into articles.text
    "end" INTEGER NOT NULL,
    tokens INTEGER NOT NULL           -- word pieces of the embedded input
);
CREATE INDEX chunks_article ON chunks(article_row);
"""


@dataclass(slots=True)
class Manifest:
    format_version: int
    model: str
    dimension: int
    max_seq_length: int
    chunker: dict[str, int]
    index_type: str
    articles: int
    chunks: int
    chunks_over_limit: int
    version: str
    built_at: str
    build_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article as the published index holds it, with where its chunks live."""

    row: int
    id: str
    title: str
    source: str
    path: str
    url: str | None
    date: str | None
    hash: str
    first_chunk: int
    n_chunks: int


# ---------------------------------------------------------------- layout and locking


def versions_dir(root: Path) -> Path:
    return root / VERSIONS


def current_version_name(root: Path) -> str | None:
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def current_version_dir(root: Path) -> Path:
    name = current_version_name(root)
    if name is None or not (versions_dir(root) / name / "manifest.json").is_file():
        raise IndexNotBuilt(
            f"no index has been built in {root} yet: run `python -m index rebuild` first"
        )
    return versions_dir(root) / name


@contextlib.contextmanager
def rebuild_lock(root: Path) -> Iterator[None]:
    """One rebuild at a time per index folder; the OS drops the lock if the process dies."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RebuildBusy(
                f"another rebuild of {root} is running; try again when it ends"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_version_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


# ---------------------------------------------------------------- writing


@dataclass(slots=True)
class VersionWriter:
    """Collects a version's articles, chunks and vectors, then writes and publishes it.

    Must be used under `rebuild_lock`.
    """

    root: Path
    dimension: int
    name: str = field(default_factory=new_version_name)
    _articles: list[tuple[Article, str, int, int]] = field(default_factory=list)
    _chunks: list[Chunk] = field(default_factory=list)
    _lexical_docs: list[str] = field(default_factory=list)
    _vector_parts: list[np.ndarray] = field(default_factory=list)

    def add(
        self, article: Article, content_hash: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{article.id}: {len(chunks)} chunks but {len(vectors)} vectors")
        first = len(self._chunks)
        self._articles.append((article, content_hash, first, len(chunks)))
        self._chunks.extend(chunks)
        self._lexical_docs.extend(f"{article.title}\n{c.text}" for c in chunks)
        if len(chunks):
            self._vector_parts.append(ann.check_vectors(vectors, self.dimension))

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def publish(
        self, manifest_fields: dict[str, Any], ann_config: ann.AnnConfig, max_seq_length: int
    ) -> Manifest:
        started = time.perf_counter()
        vdir = versions_dir(self.root)
        vdir.mkdir(parents=True, exist_ok=True)
        tmp = vdir / f"{TMP_PREFIX}{self.name}"
        tmp.mkdir()
        vectors = (
            np.concatenate(self._vector_parts)
            if self._vector_parts
            else np.zeros((0, self.dimension), dtype=np.float32)
        )
        np.save(tmp / "vectors.npy", vectors)
        index, kind = ann.build_index(vectors, ann_config)
        faiss.write_index(index, str(tmp / "dense.faiss"))
        if self._lexical_docs:
            LexicalIndex.build(self._lexical_docs).save(tmp / "bm25")
        self._write_sqlite(tmp / "meta.sqlite")
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            dimension=self.dimension,
            max_seq_length=max_seq_length,
            index_type=kind,
            articles=len(self._articles),
            chunks=len(self._chunks),
            chunks_over_limit=sum(c.tokens > max_seq_length for c in self._chunks),
            version=self.name,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            **manifest_fields,
        )
        manifest.build_seconds = round(manifest.build_seconds + time.perf_counter() - started, 3)
        (tmp / "manifest.json").write_text(
            json.dumps(manifest.to_json(), indent=2), encoding="utf-8"
        )
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        final = vdir / self.name
        os.replace(tmp, final)
        _fsync_dir(vdir)
        pointer = self.root / f"{CURRENT}.tmp"
        with open(pointer, "w", encoding="utf-8") as fh:
            fh.write(self.name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)
        log.info("published index version %s (%d chunks)", self.name, len(self._chunks))
        return manifest

    def _write_sqlite(self, path: Path) -> None:
        conn = sqlite3.connect(path)
        try:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    (row, a.id, a.title, a.source, a.path, a.url, a.date, h, a.text, first, n)
                    for row, (a, h, first, n) in enumerate(self._articles)
                ),
            )
            article_rows = {a.id: row for row, (a, _, _, _) in enumerate(self._articles)}
            conn.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?)",
                (
                    (row, article_rows[c.article_id], c.ordinal, c.start, c.end, c.tokens)
                    for row, c in enumerate(self._chunks)
                ),
            )
            conn.commit()
        finally:
            conn.close()


def collect_garbage(root: Path, keep: int) -> None:
    """Delete unfinished versions and all but the `keep` newest published ones.

    Must be called under `rebuild_lock`: then no other writer owns a `.tmp-` folder. The
    current version is always kept, whatever its age.
    """
    vdir = versions_dir(root)
    if not vdir.is_dir():
        return
    current = current_version_name(root)
    published = sorted(p for p in vdir.iterdir() if p.is_dir() and not p.name.startswith("."))
    doomed = [p for p in vdir.iterdir() if p.name.startswith(TMP_PREFIX)]
    doomed += [p for p in published[:-keep] if p.name != current]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
        log.debug("removed old index version %s", path.name)


# ---------------------------------------------------------------- reading


class StoredIndex:
    """A published version opened for reading: metadata, vectors, FAISS and BM25."""

    def __init__(self, path: Path, ann_config: ann.AnnConfig | None = None) -> None:
        self.path = path
        try:
            self.manifest = Manifest.from_json(
                json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            )
        except (OSError, ValueError, TypeError) as exc:
            raise IndexMismatch(f"cannot read the manifest of {path}: {exc}") from exc
        if self.manifest.format_version != FORMAT_VERSION:
            raise IndexMismatch(
                f"the index in {path.parent.parent} has format version "
                f"{self.manifest.format_version}; this program reads version {FORMAT_VERSION}. "
                "Run `python -m index rebuild --full`."
            )
        self.db = sqlite3.connect(
            f"file:{path / 'meta.sqlite'}?mode=ro", uri=True, check_same_thread=False
        )
        self.vectors: np.ndarray = np.load(path / "vectors.npy", mmap_mode="r")
        self._faiss: faiss.Index | None = None
        self._lexical: LexicalIndex | None = None
        self._lexical_loaded = False
        self._ann_config = ann_config or ann.AnnConfig()

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def size(self) -> int:
        return self.manifest.chunks

    @property
    def dense(self) -> faiss.Index:
        if self._faiss is None:
            index = faiss.read_index(str(self.path / "dense.faiss"))
            ann.tune(index, self._ann_config)
            self._faiss = index
        return self._faiss

    @property
    def lexical(self) -> LexicalIndex | None:
        if not self._lexical_loaded:
            folder = self.path / "bm25"
            self._lexical = LexicalIndex.load(folder, self.size) if folder.is_dir() else None
            self._lexical_loaded = True
        return self._lexical

    def check_model(self, model: str) -> None:
        if self.manifest.model != canonical_model_name(model):
            raise IndexMismatch(
                f"the index was built with embedding model {self.manifest.model!r} but "
                f"EMBEDDING_MODEL is {model!r}: rebuild it (`python -m index rebuild --full`) "
                "or set EMBEDDING_MODEL to match"
            )

    def articles(self) -> list[StoredArticle]:
        rows = self.db.execute(
            "SELECT row, id, title, source, path, url, date, hash, first_chunk, n_chunks "
            "FROM articles ORDER BY row"
        )
        return [StoredArticle(*r) for r in rows]

    def article_text(self, article_id: str) -> str | None:
        row = self.db.execute("SELECT text FROM articles WHERE id = ?", (article_id,)).fetchone()
        return row[0] if row else None

    def chunk_rows(self, rows: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Metadata and text of the given chunk rows, keyed by row."""
        out: dict[int, dict[str, Any]] = {}
        ids = [int(r) for r in rows]
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                'SELECT c.row, c.ordinal, c.start, c."end", a.id, a.title, a.source, a.url, '
                'substr(a.text, c.start + 1, c."end" - c.start) '
                f"FROM chunks c JOIN articles a ON a.row = c.article_row WHERE c.row IN ({marks})",
                part,
            ):
                out[r[0]] = {
                    "ordinal": r[1], "start": r[2], "end": r[3], "article_id": r[4],
                    "title": r[5], "source": r[6], "url": r[7], "text": r[8],
                }  # fmt: skip
        return out

    def stored_chunks(self, article: StoredArticle) -> list[Chunk]:
        """An article's chunks as stored, for carrying them into the next version."""
        rows = self.db.execute(
            'SELECT c.ordinal, c.start, c."end", c.tokens, '
            'substr(a.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN articles a ON a.row = c.article_row WHERE c.article_row = ? ORDER BY c.row",
            (article.row,),
        )
        return [Chunk(article.id, o, s, e, text, t) for o, s, e, t, text in rows]

    def tokens_over(self, limit: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks WHERE tokens > ?", (limit,)).fetchone()[
            0
        ]

    def close(self) -> None:
        self.db.close()


def open_current(root: Path, ann_config: ann.AnnConfig | None = None) -> StoredIndex:
    """Open the published version of the index in `root`.

    Raises:
        IndexNotBuilt: nothing published yet.
        IndexMismatch: written by an incompatible format version.
    """
    return StoredIndex(current_version_dir(root), ann_config)
