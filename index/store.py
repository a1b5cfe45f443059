"""The index folder on disk: versions, the CURRENT pointer, atomic publishing, verified loading.

Layout::

    INDEX_DIR/
      CURRENT                 name of the published version (replaced atomically)
      .rebuild.lock           held by the one rebuild allowed at a time
      versions/<name>/        manifest.json, meta.sqlite, vectors.npy, dense.faiss, bm25/
      versions/.tmp-<name>/   a version being written (or deleted); never read

A rebuild writes a complete new version, renames it into place and only then swaps CURRENT
with `os.replace`, so a rebuild that fails or is killed at any point leaves the previous
version published and searchable; whatever it leaves behind is removed when it fails, or by
the next rebuild when it was killed. Readers open whatever CURRENT names and keep using it
while newer versions appear (`index.live` swaps them in).

Integrity. The manifest records the size and SHA-256 of every other file of its version, as
the store wrote it, and every reader checks what it opens, so damage from outside (a full
disk, a bad copy, an editor) is a clear `IndexDamaged` naming the file and the command that
repairs it, never a traceback or silently wrong answers. How much is checked is a cost
choice, since a million-chunk version holds gigabytes:

- on every open: CURRENT, the manifest, the presence, type and size of every file (one
  `stat` each), the SQLite header and row counts, and the shape of `vectors.npy`; plus every
  file's checksum when the whole version is at most `FULL_CHECK_BYTES` (tens of
  milliseconds), which covers every small and mid-sized collection;
- every other file of a larger version is read piecemeal (`vectors.npy`, `dense.faiss` and
  the BM25 arrays memory-mapped, `meta.sqlite` by pages), so a million-chunk version opens in
  well under 2 s and only the pages queries touch are read; a full hash would read
  gigabytes per CLI search. There the structure is checked on first use (counts, shapes,
  offsets), and a corruption that keeps size and structure is caught by the next rebuild,
  whose planning verifies every checksum (`open_current(root, checksums=True)`) and
  rebuilds from scratch when one fails.

Retention never deletes a version that a reader anywhere may still hold: each `StoredIndex`
holds a shared `flock` on its version folder until it is closed or collected, and
`collect_garbage` deletes only the versions on which it gets an exclusive lock at once; a
version still in use is left for a later rebuild to delete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import mmap
import os
import re
import secrets
import shutil
import sqlite3
import stat
import time
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import faiss
import numpy as np
from pydantic import TypeAdapter, ValidationError

from . import ann, copies, lexical_terms
from .embedder import canonical_model_name, check_backend
from .errors import (
    IndexDamaged,
    IndexError_,
    IndexFolderError,
    IndexMismatch,
    IndexNotBuilt,
    RebuildBusy,
)
from .lexical import LexicalIndex
from .models import Article, Chunk
from .sentences import pack_spans, sentence_spans, unpack_spans

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the manifest lists every file with its size and checksum
CURRENT = "CURRENT"
VERSIONS = "versions"
LOCK = ".rebuild.lock"
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
CHECKSUM = "sha256"  # hardware-accelerated on current CPUs: faster here than blake2b
FULL_CHECK_BYTES = 64 * 1024 * 1024
"""Versions up to this size have every checksum verified on each open (~60 ms at most)."""
REQUIRED_FILES = ("meta.sqlite", "vectors.npy", "dense.faiss")
MAX_POINTER_BYTES = 256
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
OPEN_ATTEMPTS = 20  # CURRENT moved on while we opened the version it named: read it again

_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?")

SHAPING_TABLE = """
CREATE TABLE IF NOT EXISTS shaping (  -- what passage shaping reads of each article
    article_row INTEGER PRIMARY KEY REFERENCES articles(row),
    word_filter BLOB NOT NULL,        -- index.copies.word_filter of its text
    sentences BLOB NOT NULL           -- index.sentences.sentence_spans, as int32 pairs
)"""

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
CREATE TABLE pages (                  -- PDFs: where each page starts in articles.text
    article_row INTEGER PRIMARY KEY REFERENCES articles(row),
    starts TEXT NOT NULL              -- JSON list of character offsets, page 1 first
);
CREATE TABLE vocab (                  -- BM25 terms (stemmed), for index.lexical_terms
    id INTEGER PRIMARY KEY,
    term TEXT NOT NULL
);
CREATE TABLE terms (                  -- each chunk's BM25 term counts: re-scored, not re-read
    row INTEGER PRIMARY KEY,          -- chunks.row
    ids BLOB NOT NULL,                -- distinct vocab ids, little-endian int32
    counts BLOB NOT NULL              -- how often each occurs, little-endian int32
);
"""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file of a version as the store wrote it."""

    size: int
    sha256: str


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
    embedding_backend: str | None = None
    """torch, onnx, onnx-int8 or openvino; None: built before backends were recorded (torch)."""
    embedding_quantization: str | None = None
    """The int8 preset (avx512_vnni, avx512, avx2, arm64) of onnx-int8, else None."""
    extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)
    """Every other file of the version (paths relative to it), with size and checksum."""
    rows: int | None = None
    """Rows of vectors.npy, dense.faiss and BM25 when an incremental rebuild left holes
    (rows of removed chunks, in no table, their vectors zeroed); None: `chunks`, no holes."""
    article_rows: int | None = None
    """Likewise the article row numbers used so far; None: `articles`, no holes."""

    @property
    def chunk_slots(self) -> int:
        return self.chunks if self.rows is None else self.rows

    @property
    def article_slots(self) -> int:
        return self.articles if self.article_rows is None else self.article_rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Validate a parsed manifest.

        Raises:
            ValueError: not a manifest of this format (pydantic's ValidationError is one).
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = set(cls.__dataclass_fields__)
        manifest = _MANIFEST.validate_python({k: v for k, v in data.items() if k in known})
        counts = (manifest.dimension, manifest.articles, manifest.chunks)
        if min(counts) < 0 or any(r.size < 0 for r in manifest.files.values()):
            raise ValueError("negative count or size")
        if manifest.chunk_slots < manifest.chunks or manifest.article_slots < manifest.articles:
            raise ValueError("fewer rows than chunks or articles")
        bad = [name for name in manifest.files if not _is_plain_relative(name)]
        if bad:
            raise ValueError(f"file name {bad[0]!r} is not a plain relative path")
        return manifest


_MANIFEST = TypeAdapter(Manifest)


def _is_plain_relative(name: str) -> bool:
    return bool(_FILE_NAME.fullmatch(name)) and ".." not in name.split("/")


@dataclass(frozen=True, slots=True)
class ArticleDetails:
    """What a citation shows besides the quote: the article's date, a PDF's page starts."""

    date: str | None
    pages: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class ArticleShaping:
    """What passage shaping reads of an article, made once at build time (`index.search`)."""

    word_filter: bytes  # `index.copies.word_filter` of its text
    sentences: np.ndarray  # (n, 2) int32: `index.sentences.sentence_spans` of its text


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


# ---------------------------------------------------------------- small helpers


def _brief(exc: BaseException) -> str:
    """An exception as a short clause: its OS reason, or its message's first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _read_small(path: Path, limit: int) -> bytes:
    """Read a small regular file; never blocks on a FIFO nor reads a huge file whole.

    Raises:
        OSError: cannot be opened or read (FileNotFoundError when absent).
        ValueError: not a regular file, or larger than `limit`.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes, more than a {limit}-byte limit")
        parts: list[bytes] = []
        size = 0
        while chunk := os.read(fd, limit + 1 - size):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"more than a {limit}-byte limit")
        return b"".join(parts)
    finally:
        os.close(fd)


def _manifest_digest(data: dict[str, Any]) -> str:
    """The manifest's own checksum, over its canonical JSON without the checksum field.

    The manifest cannot list itself; without this, a changed byte in a recorded size or
    checksum would be blamed on the file it describes.
    """
    body = {k: v for k, v in data.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.new(CHECKSUM, canonical.encode("ascii")).hexdigest()


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, CHECKSUM).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version_files(folder: Path) -> list[str]:
    """The files of a version being written, as relative paths, manifest excluded."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


# ---------------------------------------------------------------- layout and locking


def versions_dir(root: Path) -> Path:
    return root / VERSIONS


def _not_a_folder(root: Path) -> IndexFolderError:
    return IndexFolderError(
        f"the index folder {root} is a file, not a folder: point INDEX_DIR (or --index) at a folder"
    )


def current_version_name(root: Path) -> str | None:
    """The published version's name; None when nothing has been published.

    Raises:
        IndexDamaged: CURRENT exists but does not hold a version name.
        IndexFolderError: `root` is a file.
    """
    try:
        raw = _read_small(root / CURRENT, MAX_POINTER_BYTES)
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        raise _not_a_folder(root) from exc
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"CURRENT in {root} cannot be read ({_brief(exc)})") from exc
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise IndexDamaged(f"CURRENT in {root} holds binary data, not a version name") from exc
    if not name:
        raise IndexDamaged(f"CURRENT in {root} is empty")
    if not _VERSION_NAME.fullmatch(name):
        raise IndexDamaged(f"CURRENT in {root} does not hold a version name")
    return name


def published_versions(root: Path) -> list[Path]:
    """Finished version folders, oldest first (names sort by build time)."""
    vdir = versions_dir(root)
    try:
        entries = list(vdir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(p for p in entries if not p.name.startswith(".") and p.is_dir())


def _nothing_published(root: Path) -> IndexError_:
    if published_versions(root):
        return IndexDamaged(f"CURRENT is missing from {root}, though versions exist")
    return IndexNotBuilt(
        f"no index has been built in {root} yet: run `python -m index rebuild` first"
    )


def current_version_dir(root: Path) -> Path:
    """The published version's folder (not locked: see `open_current` for reading it).

    Raises:
        IndexNotBuilt: nothing published yet.
        IndexDamaged: CURRENT is unreadable or names a version that is missing.
    """
    name = current_version_name(root)
    if name is None:
        raise _nothing_published(root)
    path = versions_dir(root) / name
    if not (path / MANIFEST).is_file():
        raise IndexDamaged(f"CURRENT in {root} names version {name}, which is missing")
    return path


@contextlib.contextmanager
def rebuild_lock(root: Path) -> Iterator[None]:
    """One rebuild at a time per index folder; the OS drops the lock if the process dies.

    Raises:
        RebuildBusy: another rebuild holds it.
        IndexFolderError: the folder cannot be created or written (a file, read-only, full).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / LOCK, "a+")  # noqa: SIM115 - closed below, after the yield
    except (FileExistsError, NotADirectoryError) as exc:
        raise _not_a_folder(root) from exc
    except OSError as exc:
        raise IndexFolderError(f"cannot use the index folder {root}: {_brief(exc)}") from exc
    with handle, hold_lock(handle, f"another rebuild of {root} is running; try again when it ends"):
        yield


@contextlib.contextmanager
def hold_lock(handle: IO[Any], busy: str) -> Iterator[None]:
    """An exclusive lock on the open file `handle`, dropped by the OS if the process dies.

    Raises:
        RebuildBusy: with the message `busy`, when another holds it.
    """
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise RebuildBusy(busy) from exc
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


def new_version_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def sweep_unfinished(root: Path) -> None:
    """Remove what a killed rebuild left: `.tmp-` folders and a stray CURRENT.tmp.

    Must be called under `rebuild_lock`: then no other writer owns them. Best effort: what
    cannot be removed now (a read-only folder) is tried again next time.
    """
    with contextlib.suppress(OSError):
        (root / f"{CURRENT}.tmp").unlink(missing_ok=True)
    vdir = versions_dir(root)
    try:
        leftovers = [p for p in vdir.iterdir() if p.name.startswith(TMP_PREFIX)]
    except OSError:
        return
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed an unfinished index version %s", path.name)


# ---------------------------------------------------------------- writing


@dataclass(slots=True)
class VersionWriter:
    """Collects a version's articles, chunks and vectors, then writes and publishes it.

    Two ways to write. Without `base`, every file is written from what was added (a full
    rebuild, or a re-layout of the previous version's carried-over data). With `base`, the
    published version, the new one starts from copies of its files: the articles `retire`d
    lose their rows, those `add`ed get new rows after the last, and nothing else is
    rewritten row by row:

    - meta.sqlite: a copy, with the retired rows deleted and the new ones inserted;
    - vectors.npy: a copy with the retired rows zeroed and the new vectors appended;
    - dense.faiss: the base's index read into memory with the new vectors added (ids are
      assigned in order, so they stay the rows); a retired row stays in the graph, where it
      still helps navigation, and is dropped from results since no chunk has its row (and
      its stored vector, which exact scoring reads, is zero); a flat index is simply rebuilt
      from the vectors, which costs a copy;
    - bm25/: re-scored from the term counts kept in meta.sqlite (`index.lexical_terms`),
      so only the new chunks are tokenised.

    Rows of retired chunks thus stay as holes (`Manifest.rows`) until a rebuild writes
    everything anew, which `index.rebuild` does once they pass a share. The base's files are
    only ever read (copied, never linked), so a rebuild killed at any point leaves the
    published version exactly as it was.

    Must be used under `rebuild_lock`.
    """

    root: Path
    dimension: int
    name: str = field(default_factory=new_version_name)
    base: StoredIndex | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase of writing: sqlite, vectors, bm25, ann, checksums, publish."""
    _articles: list[tuple[Article, str, int, int]] = field(default_factory=list)
    _chunks: list[Chunk] = field(default_factory=list)
    _lexical_docs: list[str] = field(default_factory=list)
    _vector_parts: list[np.ndarray] = field(default_factory=list)
    _retired: list[StoredArticle] = field(default_factory=list)

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

    def retire(self, article: StoredArticle) -> None:
        """Drop an article of `base` (removed, or changed and `add`ed again)."""
        if self.base is None:
            raise ValueError("retire() needs a base version")
        self._retired.append(article)

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def publish(
        self, manifest_fields: dict[str, Any], ann_config: ann.AnnConfig, max_seq_length: int
    ) -> Manifest:
        """Write the version, then point CURRENT at it.

        On any failure, everything this call wrote is removed and CURRENT is untouched.

        Raises:
            IndexFolderError: the folder could not be written (read-only, disk full...).
        """
        vdir = versions_dir(self.root)
        tmp = vdir / f"{TMP_PREFIX}{self.name}"
        final = vdir / self.name
        pointer = self.root / f"{CURRENT}.tmp"
        switched = False
        try:
            if self.base is None:
                manifest = self._write(tmp, manifest_fields, ann_config, max_seq_length)
            else:
                manifest = self._write_incremental(tmp, manifest_fields, max_seq_length)
            with self._phase("publish"):
                os.replace(tmp, final)
                _fsync_dir(vdir)
                with open(pointer, "w", encoding="utf-8") as fh:
                    fh.write(self.name + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(pointer, self.root / CURRENT)
                switched = True
                _fsync_dir(self.root)
        except (OSError, sqlite3.Error, RuntimeError, MemoryError) as exc:
            # RuntimeError: what FAISS raises, in case it writes anything itself
            kept = "" if switched else "; the previous version is still served"
            raise IndexFolderError(
                f"cannot write the index in {self.root}: {_brief(exc)}{kept}"
            ) from exc
        finally:
            if not switched:
                for path in (tmp, final):
                    shutil.rmtree(path, ignore_errors=True)
                with contextlib.suppress(OSError):
                    pointer.unlink(missing_ok=True)
        log.info(
            "published index version %s (%d chunks, %s)",
            self.name,
            manifest.chunks,
            "incremental" if self.base is not None else "written whole",
        )
        return manifest

    def _write(
        self,
        tmp: Path,
        manifest_fields: dict[str, Any],
        ann_config: ann.AnnConfig,
        max_seq_length: int,
    ) -> Manifest:
        started = time.perf_counter()
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        with self._phase("vectors"):
            vectors = (
                np.concatenate(self._vector_parts)
                if self._vector_parts
                else np.zeros((0, self.dimension), dtype=np.float32)
            )
            with open(tmp / "vectors.npy", "wb") as fh:
                np.save(fh, vectors, allow_pickle=False)
        with self._phase("ann"):
            index, kind = ann.build_index(vectors, ann_config)
            _write_faiss(index, tmp / "dense.faiss")
            del index
        with self._phase("bm25"):
            vocab: dict[str, int] = {}
            terms = lexical_terms.count_terms(self._lexical_docs, vocab)
            if terms:
                n = len(terms)
                bm25 = lexical_terms.build_bm25(np.arange(n), terms, vocab, n)
                lexical_terms.save_bm25(bm25, tmp / "bm25")
        with self._phase("sqlite"):
            self._write_sqlite(tmp / "meta.sqlite", terms, vocab)
        return self._finish(
            tmp,
            started,
            manifest_fields,
            index_type=kind,
            max_seq_length=max_seq_length,
            counts=(len(self._articles), len(self._chunks)),
            slots=(len(self._articles), len(self._chunks)),
            over_limit=sum(c.tokens > max_seq_length for c in self._chunks),
        )

    def _write_incremental(
        self, tmp: Path, manifest_fields: dict[str, Any], max_seq_length: int
    ) -> Manifest:
        base = self.base
        assert base is not None
        started = time.perf_counter()
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        m = base.manifest
        first_article, first_row = m.article_slots, m.chunk_slots
        slots = first_row + len(self._chunks)
        retired_rows = [(a.first_chunk, a.n_chunks) for a in self._retired]
        with self._phase("sqlite"):
            shutil.copyfile(base.path / "meta.sqlite", tmp / "meta.sqlite")
            conn = sqlite3.connect(tmp / "meta.sqlite")
        try:
            with self._phase("sqlite"):
                vocab = dict(conn.execute("SELECT term, id FROM vocab"))
                known = len(vocab)
                conn.executemany(
                    "DELETE FROM terms WHERE row >= ? AND row < ?",
                    ((s, s + n) for s, n in retired_rows),
                )
                # a base written before shaping data was kept gets the table; its own
                # articles have none and are shaped from their text (ArticleShaping)
                conn.execute(SHAPING_TABLE)
                for table in ("chunks", "pages", "shaping"):
                    conn.executemany(
                        f"DELETE FROM {table} WHERE article_row = ?",
                        ((a.row,) for a in self._retired),
                    )
                conn.executemany(
                    "DELETE FROM articles WHERE row = ?", ((a.row,) for a in self._retired)
                )
            with self._phase("bm25"):
                terms = lexical_terms.count_terms(self._lexical_docs, vocab)
            with self._phase("sqlite"):
                new_terms = sorted(vocab.items(), key=lambda item: item[1])[known:]
                conn.executemany("INSERT INTO vocab VALUES (?,?)", ((i, t) for t, i in new_terms))
                self._insert_rows(conn, first_article, first_row, terms)
                conn.commit()
                live_articles, live_chunks = (
                    conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("articles", "chunks")
                )
                over = conn.execute(
                    "SELECT COUNT(*) FROM chunks WHERE tokens > ?", (max_seq_length,)
                ).fetchone()[0]
            with self._phase("bm25"):
                stored = conn.execute("SELECT row, ids, counts FROM terms ORDER BY row").fetchall()
                rows = np.fromiter((r for r, _, _ in stored), dtype=np.int64, count=len(stored))
                all_terms = [lexical_terms.RowTerms.from_blobs(i, c) for _, i, c in stored]
                del stored
                if len(rows) != live_chunks:
                    raise sqlite3.DatabaseError("term counts do not match the chunks")
                if live_chunks:
                    bm25 = lexical_terms.build_bm25(rows, all_terms, vocab, slots)
                    lexical_terms.save_bm25(bm25, tmp / "bm25")
                    del bm25
                del all_terms
        finally:
            conn.close()
        with self._phase("vectors"):
            new = (
                np.concatenate(self._vector_parts)
                if self._vector_parts
                else np.zeros((0, self.dimension), dtype=np.float32)
            )
            _write_vectors(tmp / "vectors.npy", base.vectors, retired_rows, new)
        with self._phase("ann"):
            kind = m.index_type
            if kind == "flat":  # exact search over the zeroed copy: a copy is all it costs
                vectors = np.load(tmp / "vectors.npy", mmap_mode="r", allow_pickle=False)
                index, kind = ann.build_index(vectors, ann.AnnConfig(index_type="flat"))
                del vectors
            else:  # read whole (not memory-mapped: it is extended) from the checked file
                index = faiss.read_index(str(base.path / "dense.faiss"))
                if index.ntotal != first_row:
                    raise RuntimeError(f"dense.faiss holds {index.ntotal} rows, not {first_row}")
                if len(new):
                    index.add(new)
            _write_faiss(index, tmp / "dense.faiss")
            del index
        articles = first_article + len(self._articles)
        return self._finish(
            tmp,
            started,
            manifest_fields,
            index_type=kind,
            max_seq_length=max_seq_length,
            counts=(live_articles, live_chunks),
            slots=(articles, slots),
            over_limit=over,
        )

    def _finish(
        self,
        tmp: Path,
        started: float,
        manifest_fields: dict[str, Any],
        *,
        index_type: str,
        max_seq_length: int,
        counts: tuple[int, int],
        slots: tuple[int, int],
        over_limit: int,
    ) -> Manifest:
        """Checksum and sync every file, then write the manifest that lists them."""
        with self._phase("checksums"):
            files: dict[str, FileRecord] = {}
            for rel in _version_files(tmp):
                path = tmp / rel
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
                    digest = hashlib.file_digest(fh, CHECKSUM).hexdigest()
                files[rel] = FileRecord(path.stat().st_size, digest)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            dimension=self.dimension,
            max_seq_length=max_seq_length,
            index_type=index_type,
            articles=counts[0],
            chunks=counts[1],
            chunks_over_limit=over_limit,
            version=self.name,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files=files,
            rows=slots[1] if slots[1] != counts[1] else None,
            article_rows=slots[0] if slots[0] != counts[0] else None,
            **manifest_fields,
        )
        manifest.build_seconds = round(manifest.build_seconds + time.perf_counter() - started, 3)
        with self._phase("checksums"):
            data = manifest.to_json()
            data["checksum"] = _manifest_digest(data)
            with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(data, indent=2))
                fh.flush()
                os.fsync(fh.fileno())
            for folder in {tmp, *((tmp / rel).parent for rel in files)}:
                _fsync_dir(folder)
        return manifest

    def _write_sqlite(
        self, path: Path, terms: Sequence[lexical_terms.RowTerms], vocab: dict[str, int]
    ) -> None:
        conn = sqlite3.connect(path)
        try:
            conn.executescript(SCHEMA)
            conn.execute(SHAPING_TABLE)
            conn.executemany("INSERT INTO vocab VALUES (?,?)", ((i, t) for t, i in vocab.items()))
            self._insert_rows(conn, 0, 0, terms)
            conn.commit()
        finally:
            conn.close()

    def _shifted(self, first_row: int) -> Iterator[tuple[Article, str, str, int, int]]:
        """Each added article with its hash, text, first chunk row and chunk count."""
        for a, h, first, n in self._articles:
            yield a, h, a.text, first_row + first, n

    def _insert_rows(
        self,
        conn: sqlite3.Connection,
        first_article: int,
        first_row: int,
        terms: Sequence[lexical_terms.RowTerms],
    ) -> None:
        """Insert the added articles, numbered from `first_article`, chunks from `first_row`."""
        conn.executemany(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                (first_article + i, a.id, a.title, a.source, a.path, a.url, a.date, h, *rest)
                for i, (a, h, *rest) in enumerate(self._shifted(first_row))
            ),
        )
        article_rows = {a.id: first_article + i for i, (a, _, _, _) in enumerate(self._articles)}
        conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?)",
            (
                (first_row + i, article_rows[c.article_id], c.ordinal, c.start, c.end, c.tokens)
                for i, c in enumerate(self._chunks)
            ),
        )
        conn.executemany(
            "INSERT INTO pages VALUES (?,?)",
            (
                (first_article + i, json.dumps(list(a.pages)))
                for i, (a, _, _, _) in enumerate(self._articles)
                if a.pages
            ),
        )
        conn.executemany(
            "INSERT INTO shaping VALUES (?,?,?)",
            (
                (first_article + i, copies.word_filter(a.text), pack_spans(sentence_spans(a.text)))
                for i, (a, _, _, _) in enumerate(self._articles)
            ),
        )
        conn.executemany(
            "INSERT INTO terms VALUES (?,?,?)",
            ((first_row + i, *t.blobs()) for i, t in enumerate(terms)),
        )


def has_term_counts(stored: StoredIndex) -> bool:
    """Whether a version keeps BM25 term counts, which an incremental rebuild builds on."""
    if stored.db is None:
        return False
    try:
        names = {r[0] for r in stored.db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        return False
    return {"vocab", "terms"} <= names


def _write_faiss(index: faiss.Index, path: Path) -> None:
    with open(path, "wb") as fh:
        # through Python's file object, so a full disk is an OSError with its errno
        writer = faiss.PyCallbackIOWriter(fh.write)
        faiss.write_index(index, writer)
        del writer  # flushes its buffer into fh


VECTOR_BLOCK_ROWS = 16_384  # rows copied per write: ~25 MB of 384-d vectors


def _write_vectors(
    path: Path, base: np.ndarray, zeroed: Sequence[tuple[int, int]], new: np.ndarray
) -> None:
    """vectors.npy: `base` with the row ranges `zeroed` (start, count) zeroed, then `new`.

    Written through a file object block by block, not a writable memory map: a full disk
    is then an OSError, not a SIGBUS that kills the process.
    """
    rows = len(base) + len(new)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        "fortran_order": False,
        "shape": (rows, base.shape[1]),
    }
    dead = np.zeros(len(base), dtype=bool)
    for start, count in zeroed:
        dead[start : start + count] = True
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, len(base), VECTOR_BLOCK_ROWS):
            block = np.array(base[start : start + VECTOR_BLOCK_ROWS], dtype=np.float32)
            block[dead[start : start + VECTOR_BLOCK_ROWS]] = 0.0
            fh.write(block.tobytes())
        fh.write(np.ascontiguousarray(new, dtype=np.float32).tobytes())


def collect_garbage(root: Path, keep: int) -> None:
    """Delete unfinished versions and all but the `keep` newest published ones.

    Must be called under `rebuild_lock`: then no other writer owns a `.tmp-` folder. The
    current version is always kept, whatever its age, and so is any version a reader (in any
    process) still holds: it is deleted by a later call, once free.

    A version newer than the current one was never served: a rebuild was killed after
    renaming it into place and before moving CURRENT (nothing else moves CURRENT back). It
    is removed first, so that it does not count among the `keep` and push out the version
    served before the current one.
    """
    sweep_unfinished(root)
    try:
        current = current_version_name(root)
    except IndexError_ as exc:  # nothing can be judged unused while CURRENT is unreadable
        log.warning("%s: no old version removed", exc)
        return
    published = published_versions(root)
    if current is not None:
        for path in (p for p in published if p.name > current):
            log.info("removing index version %s: never published (a killed rebuild's)", path.name)
            _remove_unused(path)
        published = [p for p in published if p.name <= current]
    for path in published[: max(len(published) - keep, 0)]:
        if path.name != current:
            _remove_unused(path)


def _remove_unused(path: Path) -> None:
    """Delete a version folder unless a reader holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("index version %s is still being read: kept for now", path.name)
            return
        except OSError as exc:  # no locks on this file system: delete as before
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                log.warning("cannot lock old index version %s: %s", path.name, _brief(exc))
                return
        # renamed first, so that the name vanishes at once and a reader that was about to
        # open it reads CURRENT again; a half-deleted folder is then swept as a .tmp-
        doomed = path.with_name(f"{TMP_PREFIX}old-{path.name}")
        try:
            os.replace(path, doomed)
        except OSError as exc:
            log.warning("cannot remove old index version %s: %s", path.name, _brief(exc))
            return
        shutil.rmtree(doomed, ignore_errors=True)
        log.debug("removed old index version %s", path.name)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading


class VersionGone(IndexDamaged):
    """The version folder vanished (retention) between reading CURRENT and locking it."""


def _lock_version(path: Path) -> int:
    """A descriptor of the version folder holding a shared lock; retention skips it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise VersionGone(f"version {path.name} in {path.parent.parent} is missing") from exc
    except OSError as exc:
        raise IndexDamaged(f"version {path.name} cannot be opened ({_brief(exc)})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:  # being deleted right now
            raise VersionGone(f"version {path.name} is being removed") from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                raise IndexFolderError(
                    f"cannot lock index version {path.name}: {_brief(exc)}"
                ) from exc
            log.debug("no locks on %s: old versions may vanish under readers", path)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # deleted between our open and our lock
            raise VersionGone(f"version {path.name} in {path.parent.parent} is missing")
    except BaseException:
        os.close(fd)
        raise
    return fd


class StoredIndex:
    """A published version opened for reading: metadata, vectors, FAISS and BM25.

    Holds a shared lock on its version folder until `close` (or garbage collection), so no
    rebuild deletes it meanwhile.
    """

    def __init__(
        self,
        path: Path,
        ann_config: ann.AnnConfig | None = None,
        *,
        checksums: bool | None = None,
    ) -> None:
        """Open and check a version (see the module docstring for what is checked when).

        Args:
            checksums: verify every file's checksum now; None: when the version is small.

        Raises:
            IndexDamaged: a file is missing, of the wrong size or content, or unreadable.
            IndexMismatch: written by an incompatible format version.
        """
        self.path = path
        self._where = f"version {path.name} in {path.parent.parent}"
        self._ann_config = ann_config or ann.AnnConfig()
        self._faiss: faiss.Index | None = None
        self._lexical: LexicalIndex | None = None
        self._lexical_loaded = False
        self._hashed: set[str] = set()
        self._full_check = False  # checksums verified on open (a small version)
        self.db: sqlite3.Connection | None = None
        self._has_shaping: bool | None = None
        fd = _lock_version(path)
        self._release = weakref.finalize(self, os.close, fd)
        try:
            self.manifest = self._read_manifest()
            total = sum(r.size for r in self.manifest.files.values())
            full = checksums if checksums is not None else total <= FULL_CHECK_BYTES
            self._full_check = full
            for rel in self.manifest.files:
                self._check_file(rel, checksum=full)
            self.db = self._open_db()
            self.vectors: np.ndarray = self._open_vectors()
        except BaseException:
            self.close()
            raise

    # -- opening and checking

    def _damaged(self, what: str) -> IndexDamaged:
        return IndexDamaged(f"{what} of {self._where}")

    def _read_manifest(self) -> Manifest:
        try:
            data = json.loads(_read_small(self.path / MANIFEST, MAX_MANIFEST_BYTES))
        except FileNotFoundError as exc:
            raise self._damaged(f"{MANIFEST} is missing") from exc
        except (OSError, ValueError) as exc:  # UnicodeDecodeError, JSONDecodeError included
            raise self._damaged(f"{MANIFEST} cannot be read ({_brief(exc)})") from exc
        if not isinstance(data, dict):
            raise self._damaged(f"{MANIFEST} is not a JSON object")
        found = data.get("format_version")
        if isinstance(found, int) and found != FORMAT_VERSION:
            raise IndexMismatch(
                f"the index in {self.path.parent.parent} has format version {found}; this "
                f"program reads version {FORMAT_VERSION}. Run `python -m index rebuild --full`."
            )
        if data.get("checksum") != _manifest_digest(data):
            raise self._damaged(f"{MANIFEST} does not match its checksum (corrupted)")
        try:
            manifest = Manifest.from_json(data)
        except (ValidationError, ValueError) as exc:
            raise self._damaged(f"{MANIFEST} is not a valid manifest") from exc
        if manifest.version != self.path.name:
            raise self._damaged(f"{MANIFEST} names version {manifest.version!r}")
        missing = [f for f in REQUIRED_FILES if f not in manifest.files]
        if manifest.chunks and not any(f.startswith("bm25/") for f in manifest.files):
            missing.append("bm25/")
        if missing:
            raise self._damaged(f"{MANIFEST} lists no {', '.join(missing)}")
        return manifest

    def _check_file(self, rel: str, *, checksum: bool) -> Path:
        """Check one listed file: a regular file of the recorded size (and checksum)."""
        record = self.manifest.files[rel]
        path = self.path / rel
        try:
            info = os.lstat(path)
        except FileNotFoundError as exc:
            raise self._damaged(f"{rel} is missing") from exc
        except OSError as exc:
            raise self._damaged(f"{rel} cannot be read ({_brief(exc)})") from exc
        if not stat.S_ISREG(info.st_mode):
            raise self._damaged(f"{rel} is not a regular file")
        if info.st_size != record.size:
            raise self._damaged(
                f"{rel} has {info.st_size} bytes instead of {record.size} (truncated or "
                "overwritten)"
            )
        if checksum and rel not in self._hashed:
            try:
                digest = file_digest(path)
            except OSError as exc:
                raise self._damaged(f"{rel} cannot be read ({_brief(exc)})") from exc
            if digest != record.sha256:
                raise self._damaged(f"{rel} does not match its checksum (corrupted)")
            self._hashed.add(rel)
        return path

    def _open_db(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path / "meta.sqlite")) + "?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._damaged(f"meta.sqlite cannot be opened ({_brief(exc)})") from exc
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if not {"articles", "chunks"} <= tables:
                raise self._damaged("meta.sqlite lacks its tables")
            # rows are numbered 0..n-1 on write; max() is one B-tree descent, not a scan
            counts = [
                db.execute(f"SELECT coalesce(max(row) + 1, 0) FROM {t}").fetchone()[0]
                for t in ("articles", "chunks")
            ]
        except sqlite3.DatabaseError as exc:
            db.close()
            raise self._damaged(f"meta.sqlite cannot be read ({_brief(exc)})") from exc
        except BaseException:
            db.close()
            raise
        m = self.manifest
        holes = m.rows is not None or m.article_rows is not None  # an incremental rebuild's
        slots = [m.article_slots, m.chunk_slots]
        fits = all(c <= s for c, s in zip(counts, slots, strict=True)) if holes else counts == slots
        if not fits:
            db.close()
            raise self._damaged(
                f"meta.sqlite holds {counts[0]} articles and {counts[1]} chunks, the manifest "
                f"{self.manifest.articles} and {self.manifest.chunks}"
            )
        return db

    def _open_vectors(self) -> np.ndarray:
        path = self.path / "vectors.npy"
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError would read as Ctrl-D
            raise self._damaged(f"vectors.npy cannot be read ({_brief(exc)})") from exc
        expected = (self.size, self.manifest.dimension)
        if vectors.dtype != np.float32 or vectors.shape != expected:
            raise self._damaged(
                f"vectors.npy holds {vectors.dtype} {vectors.shape} instead of float32 {expected}"
            )
        # Re-scoring reads scattered rows: without this each row read ahead ~100 kB around it
        # (686 MiB resident after 100 queries at 1M chunks, instead of a page per row).
        mapped = getattr(vectors, "_mmap", None)
        if mapped is not None and hasattr(mmap, "MADV_RANDOM"):
            mapped.madvise(mmap.MADV_RANDOM)
        return vectors

    def verify(self) -> None:
        """Check every file's checksum and load every part: what a rebuild relies on.

        Raises:
            IndexDamaged: naming the first damaged file.
        """
        for rel in self.manifest.files:
            self._check_file(rel, checksum=True)
        self._full_check = True
        self.dense  # noqa: B018
        self.lexical  # noqa: B018

    # -- the parts

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def size(self) -> int:
        """Chunk rows (FAISS ids, BM25 documents), holes of an incremental rebuild included."""
        return self.manifest.chunk_slots

    @property
    def dense(self) -> faiss.Index:
        """The FAISS index, memory-mapped on first use (its checksum verified when small).

        Raises:
            IndexDamaged: the file is damaged or is not this version's index.
        """
        if self._faiss is None:
            path = self._check_file("dense.faiss", checksum=self._full_check)
            try:
                index = ann.read_index(path)
            except Exception as exc:  # any failure to parse it is damage
                raise self._damaged(f"dense.faiss cannot be read ({_brief(exc)})") from exc
            if index.ntotal != self.size or index.d != self.manifest.dimension:
                raise self._damaged(
                    f"dense.faiss holds {index.ntotal} vectors of dimension {index.d}"
                )
            ann.tune(index, self._ann_config)
            self._faiss = index
        return self._faiss

    def dense_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top `k` rows per query vector (scores, ids), exact cosines for a lossy index.

        Raises:
            IndexDamaged: the FAISS file is damaged.
        """
        return ann.search(
            self.dense, self.manifest.index_type, self.vectors, queries, k, self._ann_config.rescore
        )

    @property
    def lexical(self) -> LexicalIndex | None:
        """The BM25 index (None for an empty version), memory-mapped, checked on first use.

        Raises:
            IndexDamaged: a BM25 file is damaged.
        """
        if not self._lexical_loaded:
            names = [f for f in self.manifest.files if f.startswith("bm25/")]
            lexical = None
            if names:
                for rel in names:
                    self._check_file(rel, checksum=self._full_check)
                try:
                    lexical = LexicalIndex.load(self.path / "bm25", self.size)
                    lexical.check(thorough=self._full_check)
                except Exception as exc:  # any failure to parse it is damage
                    raise self._damaged(f"the BM25 index cannot be read ({_brief(exc)})") from exc
            self._lexical = lexical
            self._lexical_loaded = True
        return self._lexical

    def check_model(self, model: str) -> None:
        if self.manifest.model != canonical_model_name(model):
            raise IndexMismatch(
                f"the index was built with embedding model {self.manifest.model!r} but "
                f"EMBEDDING_MODEL is {model!r}: rebuild it (`python -m index rebuild --full`) "
                "or set EMBEDDING_MODEL to match"
            )

    def check_embedder(self, embedder: Any) -> None:
        """Refuse a query model of another model or backend than the one that built this.

        Raises:
            IndexMismatch: naming both and the fix.
        """
        self.check_model(embedder.name)
        m = self.manifest
        check_backend(
            m.embedding_backend, m.embedding_quantization, embedder, str(self.path.parent.parent)
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The database, with a damaged page turned into `IndexDamaged`."""
        if self.db is None:
            raise sqlite3.ProgrammingError("the index is closed")
        try:
            yield self.db
        except sqlite3.ProgrammingError:  # misuse (closed), not damage
            raise
        except sqlite3.DatabaseError as exc:
            raise self._damaged(f"meta.sqlite cannot be read ({_brief(exc)})") from exc

    def articles(self) -> list[StoredArticle]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT row, id, title, source, path, url, date, hash, first_chunk, n_chunks "
                "FROM articles ORDER BY row"
            ).fetchall()
        return [StoredArticle(*r) for r in rows]

    def article_details(self, article_ids: Sequence[str]) -> dict[str, ArticleDetails]:
        """Date and PDF page offsets of the given articles, for citing them."""
        ids = list(dict.fromkeys(article_ids))
        out: dict[str, ArticleDetails] = {}
        with self._reading() as db:
            has_pages = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pages'"
            ).fetchone()  # versions written before pages were kept have no such table
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                select = (
                    "SELECT a.id, a.date, p.starts FROM articles a "
                    "LEFT JOIN pages p ON p.article_row = a.row"
                    if has_pages
                    else "SELECT a.id, a.date, NULL FROM articles a"
                )
                for aid, date, starts in db.execute(f"{select} WHERE a.id IN ({marks})", part):
                    out[aid] = ArticleDetails(date, tuple(json.loads(starts)) if starts else None)
        return out

    def shaping(self, article_ids: Sequence[str]) -> dict[str, ArticleShaping]:
        """What shaping reads of the given articles; none in versions written before it."""
        ids = list(dict.fromkeys(article_ids))
        out: dict[str, ArticleShaping] = {}
        with self._reading() as db:
            if self._has_shaping is None:
                self._has_shaping = (
                    db.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shaping'"
                    ).fetchone()
                    is not None
                )
            if not self._has_shaping:
                return out
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                for aid, words, spans in db.execute(
                    "SELECT a.id, s.word_filter, s.sentences FROM articles a JOIN shaping s "
                    f"ON s.article_row = a.row WHERE a.id IN ({marks})",
                    part,
                ):
                    if (
                        isinstance(words, bytes)
                        and isinstance(spans, bytes)
                        and len(spans) % 8 == 0
                    ):
                        out[aid] = ArticleShaping(words, unpack_spans(spans))
                    # else damaged beyond what SQLite notices: shaped from its text instead
        return out

    def article_text(self, article_id: str) -> str | None:
        with self._reading() as db:
            row = db.execute("SELECT text FROM articles WHERE id = ?", (article_id,)).fetchone()
        return row[0] if row else None

    def chunk_rows(self, rows: Sequence[int], text: bool = True) -> dict[int, dict[str, Any]]:
        """Metadata of the given chunk rows, keyed by row; with their text unless `text` is
        False (cutting it out reads the article's whole text: shaping reads that anyway)."""
        out: dict[int, dict[str, Any]] = {}
        ids = [int(r) for r in rows]
        column = ', substr(a.text, c.start + 1, c."end" - c.start)' if text else ""
        with self._reading() as db:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                for r in db.execute(
                    'SELECT c.row, c.ordinal, c.start, c."end", a.id, a.title, a.source, a.url'
                    f"{column} FROM chunks c JOIN articles a ON a.row = c.article_row "
                    f"WHERE c.row IN ({marks})",
                    part,
                ):
                    out[r[0]] = {
                        "ordinal": r[1], "start": r[2], "end": r[3], "article_id": r[4],
                        "title": r[5], "source": r[6], "url": r[7],
                    }  # fmt: skip
                    if text:
                        out[r[0]]["text"] = r[8]
        return out

    def stored_chunks(self, article: StoredArticle) -> list[Chunk]:
        """An article's chunks as stored, for carrying them into the next version."""
        with self._reading() as db:
            rows = db.execute(
                'SELECT c.ordinal, c.start, c."end", c.tokens, '
                'substr(a.text, c.start + 1, c."end" - c.start) FROM chunks c '
                "JOIN articles a ON a.row = c.article_row WHERE c.article_row = ? ORDER BY c.row",
                (article.row,),
            ).fetchall()
        return [Chunk(article.id, o, s, e, text, t) for o, s, e, t, text in rows]

    def tokens_over(self, limit: int) -> int:
        with self._reading() as db:
            return db.execute("SELECT COUNT(*) FROM chunks WHERE tokens > ?", (limit,)).fetchone()[
                0
            ]

    def close(self) -> None:
        """Release the database and the version's lock (idempotent)."""
        if self.db is not None:
            self.db.close()
        self._release()


def open_current(
    root: Path, ann_config: ann.AnnConfig | None = None, *, checksums: bool | None = None
) -> StoredIndex:
    """Open the published version of the index in `root`.

    Args:
        checksums: verify every file's checksum now; None: when the version is small.

    Raises:
        IndexNotBuilt: nothing published yet.
        IndexDamaged: CURRENT or a file of the version it names is missing or damaged.
        IndexMismatch: written by an incompatible format version.
        IndexFolderError: `root` is a file.
    """
    for attempt in range(OPEN_ATTEMPTS):
        name = current_version_name(root)
        if name is None:
            raise _nothing_published(root)
        try:
            return StoredIndex(versions_dir(root) / name, ann_config, checksums=checksums)
        except VersionGone as exc:
            if current_version_name(root) == name and not (versions_dir(root) / name).exists():
                raise IndexDamaged(
                    f"CURRENT in {root} names version {name}, which is missing"
                ) from exc
            gone = exc
            time.sleep(0.005 * attempt)  # a newer version was just published: read again
    raise gone
