"""What one file gives, remembered by its bytes, so a rebuild's planning grows with the change.

A plain rebuild reads every file of the articles folder, but parsing it (front matter, JSON,
HTML, PDF, text normalisation) and splitting its text into scored blocks and sentences for
the boilerplate detector depend on that file alone. This cache keeps both, keyed by content,
so that an unchanged file costs a read, a hash and a lookup:

- `files`: per file (its path relative to the folder), the SHA-256 of its bytes with what
  else its parse depends on (the path, the limits, for a web page the day), and the records
  it gave: the articles and the records it skipped. The bytes are always read and hashed, so
  a file rewritten with the same size and time is never served stale.
- `blocks`: per article text (SHA-256), the digests of its block and sentence keys, which
  is all the corpus-level repetition count needs, with the repeated keys last found in it and
  the boilerplate spans they gave. The spans depend on the corpus only through which of the
  text's own keys the site repeats, so they are reused exactly when that set is unchanged.

The cache lives in the index folder (`CACHE_FILE`, SQLite: each save is one transaction, so
a killed rebuild leaves the previous state). Damage only costs speed, never correctness: a
row whose checksum does not match is a miss, a file SQLite cannot read is deleted and built
again, and a cache written by other code or library versions (`_fingerprint`: the source of
the modules that parse and clean, the parsers' versions, Unicode's) is dropped whole.
`rebuild --full` never reads it (`reuse=False`) but writes it anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

CACHE_FILE = "article-cache.sqlite"
FORMAT = 1
KEY_BYTES = 16  # a block key's digest: collisions are out of reach at any archive's size

Span = tuple[int, int]

# Modules whose code decides what a file's articles and boilerplate spans are.
_SOURCES = ("article_cache.py", "articles.py", "boilerplate.py", "markup.py", "models.py",
            "sentences.py")  # fmt: skip
_LIBRARIES = ("trafilatura", "pypdf", "python-frontmatter", "PyYAML", "sentencex")
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (rel TEXT PRIMARY KEY, key BLOB NOT NULL, payload BLOB NOT NULL,
                    checksum BLOB NOT NULL);
CREATE TABLE blocks (digest BLOB PRIMARY KEY, keys BLOB NOT NULL, hits BLOB NOT NULL,
                     spans BLOB NOT NULL, checksum BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """An article text's block keys (digests) and the boilerplate last found for it."""

    keys: frozenset[bytes]
    hits: frozenset[bytes]  # the keys its site repeated when `spans` were found
    spans: tuple[Span, ...]


def _utf8(s: str) -> bytes:
    # surrogatepass: a JSON record may carry a lone surrogate, which plain UTF-8 refuses
    return s.encode("utf-8", "surrogatepass")


def text_digest(text: str) -> bytes:
    return hashlib.sha256(_utf8(text)).digest()


def key_digest(key: str) -> bytes:
    return hashlib.blake2b(_utf8(key), digest_size=KEY_BYTES).digest()


def file_key(variant: str, raw: bytes) -> bytes:
    """What a file's parse depends on: its bytes and `variant` (path, limits, day)."""
    h = hashlib.sha256(_utf8(variant))
    h.update(b"\0")
    h.update(raw)
    return h.digest()


@cache
def _fingerprint() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256(f"{FORMAT}|{sys.version}|{unicodedata.unidata_version}".encode())
    for name in _SOURCES:
        try:
            h.update((here / name).read_bytes())
        except OSError:  # code not readable as files: a change could not be told, never reuse
            h.update(os.urandom(16))
    for lib in _LIBRARIES:
        try:
            h.update(f"|{lib}={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"|{lib}=-".encode())
    return h.hexdigest()


def _check(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()[:16]


class ArticleCache:
    """Parsed files and block keys of one index folder; see the module docstring.

    Use as a context manager around loading and marking: on a clean exit the entries met
    this time are saved and those of files and texts no longer seen are dropped.
    """

    def __init__(self, path: Path, *, reuse: bool = True) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._files_seen: set[str] = set()
        self._blocks_seen: set[bytes] = set()
        self._new_files: dict[str, tuple[bytes, bytes]] = {}
        self._new_blocks: dict[bytes, BlockEntry] = {}
        self.hits = self.misses = 0
        if reuse:
            self._db = self._connect()

    @classmethod
    def open(cls, index_dir: Path, *, reuse: bool = True) -> ArticleCache:
        """The cache of `index_dir`; `reuse=False` (a full rebuild) starts it empty."""
        return cls(index_dir / CACHE_FILE, reuse=reuse)

    def __enter__(self) -> ArticleCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.save()
        self.close()

    # ------------------------------------------------------------ reading

    def _connect(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        except sqlite3.Error as exc:
            log.info("article cache unreadable (%s): reading every file", exc)
            if db is not None:
                db.close()
            return None
        if row is None or row[0] != _fingerprint():
            log.info("article cache from other code or library versions: reading every file")
            db.close()
            return None
        return db

    def _query(self, sql: str, arg: object) -> tuple[bytes, ...] | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute(sql, (arg,)).fetchone()
        except sqlite3.Error as exc:
            log.warning("article cache damaged (%s): reading the rest of the files", exc)
            self.close()
            return None
        if row is None or not all(isinstance(c, bytes) for c in row):
            return None  # every column is written as a BLOB: anything else is damage
        return tuple(row)

    def file(self, rel: str, key: bytes) -> Any | None:
        """The payload stored for the file at `rel` when it was parsed from the same `key`."""
        self._files_seen.add(rel)
        row = self._query("SELECT key, payload, checksum FROM files WHERE rel = ?", rel)
        if row is None or row[0] != key or row[2] != _check(_utf8(rel), key, row[1]):
            self.misses += 1
            return None
        try:
            payload = json.loads(row[1].decode("utf-8", "surrogatepass"))
        except ValueError:
            self.misses += 1
            return None
        self.hits += 1
        return payload

    def put_file(self, rel: str, key: bytes, payload: Any) -> None:
        """Remember what parsing the file at `rel` (bytes and variant: `key`) gave."""
        self._files_seen.add(rel)
        data = _utf8(json.dumps(payload, ensure_ascii=False))
        self._new_files[rel] = (key, data)

    def blocks(self, digest: bytes) -> BlockEntry | None:
        """The block keys and last boilerplate of the text with SHA-256 `digest`."""
        self._blocks_seen.add(digest)
        row = self._query("SELECT keys, hits, spans, checksum FROM blocks WHERE digest = ?", digest)
        if row is None:
            return None
        keys, hits, spans = row[0], row[1], row[2]
        if row[3] != _check(digest, keys, hits, spans):
            return None
        try:
            found = tuple((int(s), int(e)) for s, e in json.loads(spans))
        except (ValueError, TypeError):
            return None
        return BlockEntry(_split(keys), _split(hits), found)

    def put_blocks(self, digest: bytes, entry: BlockEntry) -> None:
        self._blocks_seen.add(digest)
        self._new_blocks[digest] = entry

    # ------------------------------------------------------------ writing

    def save(self) -> None:
        """Write what is new and drop what was not seen, in one transaction; on any error
        the cache is removed (the next rebuild reads every file once more)."""
        db = self._db
        try:
            if db is None:
                self.path.unlink(missing_ok=True)
                db = self._db = sqlite3.connect(self.path, isolation_level=None)
                db.executescript(_SCHEMA)  # no fingerprint until the commit: dropped if killed
            db.execute("BEGIN")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('fingerprint', ?)", (_fingerprint(),))
            self._write(db)
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not save the article cache (%s): next rebuild reads all", exc)
            self.close()
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)

    def _write(self, db: sqlite3.Connection) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
            (
                (rel, key, data, _check(_utf8(rel), key, data))
                for rel, (key, data) in self._new_files.items()
            ),
        )
        rows = []
        for digest, e in self._new_blocks.items():
            keys, hits = b"".join(sorted(e.keys)), b"".join(sorted(e.hits))
            spans = json.dumps(e.spans).encode()
            rows.append((digest, keys, hits, spans, _check(digest, keys, hits, spans)))
        db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("CREATE TEMP TABLE seen_files (rel TEXT PRIMARY KEY)")
        db.execute("CREATE TEMP TABLE seen_blocks (digest BLOB PRIMARY KEY)")
        db.executemany("INSERT INTO seen_files VALUES (?)", ((r,) for r in self._files_seen))
        db.executemany("INSERT INTO seen_blocks VALUES (?)", ((d,) for d in self._blocks_seen))
        db.execute("DELETE FROM files WHERE rel NOT IN (SELECT rel FROM seen_files)")
        db.execute("DELETE FROM blocks WHERE digest NOT IN (SELECT digest FROM seen_blocks)")
        db.execute("DROP TABLE seen_files")
        db.execute("DROP TABLE seen_blocks")

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _split(blob: bytes) -> frozenset[bytes]:
    return frozenset(blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES))
