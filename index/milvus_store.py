"""Milvus as the vector store (`VECTOR_STORE=milvus`): chunks, articles and hybrid search.

The FAISS store is a folder of immutable versions, private to one machine. A Milvus
collection is shared: any number of bot processes, on any number of machines, can answer from
one collection on a Milvus server (`MILVUS_URI=http://...`), and nothing is kept locally but
the URI (a rebuilding machine keeps its article cache in INDEX_DIR). Milvus Lite
(`MILVUS_URI=path/to/file.db`) runs the same engine embedded in one process, for one machine
and for the tests.

Collections share the prefix `MILVUS_COLLECTION`:

- `<name>_chunks`: one row per chunk, its primary key the chunk's *row*
  (`article number << ORDINAL_BITS | ordinal`, so the neighbours of a chunk are row +- 1 as in
  the FAISS store, which passage shaping relies on), the dense vector, the chunk's text and
  its BM25 terms, whose sparse vector Milvus's built-in BM25 function computes, and what a
  citation needs (article id, title, source, URL, offsets, content hash).
- `<name>_articles`: the article texts passages are cut from, in parts that fit a VARCHAR
  field (part 0 also holds title, source, date, PDF pages, hash and chunk count), plus one
  `meta` row: the model, backend, chunker and the *version*, a new name at every rebuild
  that readers poll to know when to drop their caches (`index.live`).
- `<name>_lock`: the lease of the rebuild running, if any (`index.milvus_lock`).
- Milvus needs a vector field in every collection: the articles' and lock's are constants.

BM25 terms are the same stemmed terms as the FAISS store's BM25 (`index.lexical`): Milvus
Lite's analyzers do not stem, and identical terms keep both stores' rankings comparable.
Hybrid search is one `hybrid_search` call: the dense and BM25 requests fused by Milvus's
weighted ranker. Its weights blend cosine with BM25 divided by the query's best BM25 score
(one `limit=1` search first), as the FAISS store does (HYBRID_DENSE_WEIGHT); Milvus's own
score normalisation (arctan) squashes BM25 and lost 1.7 points of hit@1 on SQuAD. The exact
cosine of each hit is computed here from the returned vector, for the answerer's abstention.

A rebuild writes in place (`index.milvus_rebuild`), so readers may see an article changed
mid-rebuild; one rebuild at a time per collection, held by a lease in `<name>_lock`
(`index.milvus_lock`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .embedder import canonical_model_name, check_backend
from .errors import IndexError_, IndexMismatch, IndexNotBuilt
from .lexical import document_terms, query_terms
from .models import Article, Chunk
from .redact import redact_url, register_secret
from .search import Candidates, Mode
from .settings import IndexSettings
from .store import ArticleDetails, ArticleShaping, StoredArticle

log = logging.getLogger(__name__)
_clients_lock = threading.RLock()

ORDINAL_BITS = 16
MAX_CHUNKS_PER_ARTICLE = 1 << ORDINAL_BITS
TEXT_PART_CHARS = 16_000  # 4 bytes a character at most: a part fits a 65,535-byte VARCHAR
VARCHAR_BYTES = 65_535
ID_BYTES = 4_096
META_KEY = "meta"
FORMAT = 1
INSTALL_HINT = "VECTOR_STORE=milvus needs the milvus extra: pip install -e '.[milvus]'"
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


class MilvusUnavailable(IndexError_):
    """Milvus cannot be reached or used (not installed, bad URI, server down, refused call)."""


@dataclass(frozen=True, slots=True)
class MilvusConfig:
    """Where the collections live; built from the settings by `milvus_config`."""

    uri: str
    collection: str = "articles"
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    @property
    def is_lite(self) -> bool:
        return not self.uri.startswith(SERVER_SCHEMES)

    @property
    def where(self) -> str:
        return f"Milvus collection {self.collection!r} at {redact_url(self.uri)}"


def milvus_config(settings: IndexSettings) -> MilvusConfig | None:
    """The Milvus configuration when VECTOR_STORE=milvus, else None."""
    if settings.vector_store != "milvus":
        return None
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusConfig(
        settings.milvus_uri, settings.milvus_collection, token or None,
        settings.milvus_timeout_seconds,
    )  # fmt: skip


@dataclass(slots=True)
class MilvusMeta:
    """What the `meta` row records: what built the collection, and its current version."""

    model: str
    dimension: int
    max_seq_length: int
    chunker: dict[str, int]
    embedding_backend: str | None
    embedding_quantization: str | None
    version: str
    built_at: str
    articles: int
    chunks: int
    chunks_over_limit: int = 0
    build_seconds: float = 0.0
    format: int = FORMAT
    next_number: int = 0  # the next article number (chunk rows are numbered by article)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MilvusMeta:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _brief(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    line = " ".join(str(message).split())
    return line if len(line) <= 300 else line[:297] + "..."


def _fit(text: str, limit: int = VARCHAR_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (at a character boundary)."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def chunk_row(number: int, ordinal: int) -> int:
    return (number << ORDINAL_BITS) | ordinal


def _pymilvus() -> ModuleType:
    """pymilvus, imported without letting it read MILVUS_URI.

    pymilvus reads the same variable at import for a default connection of its own and
    refuses a Milvus Lite file path there, so it must not see ours.

    Raises:
        MilvusUnavailable: not installed.
    """
    with _clients_lock:
        if sys.modules.get("pymilvus") is not None:
            return sys.modules["pymilvus"]
        saved = os.environ.pop("MILVUS_URI", None)
        try:
            import pymilvus
        except ImportError:
            raise MilvusUnavailable(INSTALL_HINT) from None
        finally:
            if saved is not None:
                os.environ["MILVUS_URI"] = saved
        return pymilvus


_clients: dict[MilvusConfig, Any] = {}
_loaded: set[tuple[MilvusConfig, str]] = set()


def _literal(value: str) -> str:
    """A string literal of Milvus's filter language (Milvus Lite has no filter templates)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t") + '"'


def _client(config: MilvusConfig) -> Any:
    """The process's connected `MilvusClient` for `config` (one connection, shared).

    Raises:
        MilvusUnavailable: pymilvus missing, a bad URI, or Milvus unreachable.
    """
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = _connect(config)
        return client


def lite_path(config: MilvusConfig) -> Path:
    """The Milvus Lite file of `config`, its folder created.

    Raises:
        MilvusUnavailable: the URI is neither a server URL nor a .db path, or its folder
            cannot be created.
    """
    uri = config.uri
    if "://" in uri:
        raise MilvusUnavailable(
            f"MILVUS_URI {redact_url(uri)!r} is neither a server URL (http://, https://, "
            "tcp://) nor a Milvus Lite file"
        )
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise MilvusUnavailable(
            f"MILVUS_URI {uri!r}: a Milvus Lite file name must end in .db "
            "(or give a server URL such as http://localhost:19530)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MilvusUnavailable(f"cannot create {path.parent} for Milvus Lite: {reason}") from exc
    return path


def _connect(config: MilvusConfig) -> Any:
    """A new connected `MilvusClient`.

    Raises:
        MilvusUnavailable: pymilvus missing, a bad URI, or Milvus unreachable.
    """
    MilvusClient = _pymilvus().MilvusClient
    # it logs every failed call at ERROR with a traceback; ours become one line instead
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    # Milvus Lite's in-process gRPC server logs a traceback for each call it does not
    # implement (pymilvus then falls back): noise, as the fallback works
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    if config.token:
        register_secret(config.token)
    uri = config.uri
    if config.is_lite:
        uri = str(lite_path(config))
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise MilvusUnavailable(
                INSTALL_HINT + " (Milvus Lite: pip install milvus-lite)"
            ) from None
    try:
        return MilvusClient(uri=uri, token=config.token or "", timeout=config.timeout)
    except Exception as exc:  # pymilvus raises its own and grpc's errors, Lite RuntimeErrors
        raise MilvusUnavailable(
            f"cannot connect to Milvus at {redact_url(config.uri)}: {_brief(exc)}"
        ) from exc


def _analyzed(terms: Sequence[str]) -> str:
    """BM25 input: stemmed terms, one space apart (Milvus's standard tokenizer keeps them)."""
    return " ".join(terms)


class MilvusStore:
    """The collections of one prefix, opened for reading and writing.

    For reading it offers what `index.search.Searcher` and the bot read from a FAISS
    `StoredIndex` (chunk rows, article texts and details, the articles list, version and
    size) and is its own candidate source (`candidates`), searching in Milvus.
    """

    def __init__(self, config: MilvusConfig, client: Any | None = None) -> None:
        self.config = config
        self.client = client if client is not None else _client(config)
        self.chunks_name = f"{config.collection}_chunks"
        self.articles_name = f"{config.collection}_articles"
        self.meta: MilvusMeta | None = None

    # -- plumbing

    @contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Any failure of a Milvus call as one `MilvusUnavailable` line naming the store."""
        try:
            yield
        except IndexError_:
            raise
        except Exception as exc:
            raise MilvusUnavailable(f"{what} failed on {self.config.where}: {_brief(exc)}") from exc

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        with self.calling("a query"):
            self._load(collection)
            return list(self.client.query(collection, filter=expr, output_fields=fields))

    def _load(self, collection: str) -> None:
        """Load a collection into memory once per process (a restarted Lite starts released)."""
        key = (self.config, collection)
        if key not in _loaded:
            self.client.load_collection(collection)
            _loaded.add(key)

    def _scan(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        """Every matching row, page by page (a plain query's result size is capped)."""
        out: list[dict] = []
        with self.calling("a scan"):
            self._load(collection)
            it = self.client.query_iterator(
                collection, batch_size=1000, filter=expr, output_fields=fields
            )
            try:
                while page := it.next():
                    out.extend(page)
            finally:
                it.close()
        return out

    def close(self) -> None:
        """Nothing to release per reader: the client is shared by the process."""

    # -- opening

    def read_meta(self) -> MilvusMeta | None:
        """The `meta` row, or None when nothing was ever built into these collections."""
        with self.calling("reading the collections"):
            if not self.client.has_collection(self.articles_name):
                return None
        rows = self._query(self.articles_name, f"key == {_literal(META_KEY)}", ["text"])
        if not rows:
            return None
        try:
            return MilvusMeta.from_json(json.loads(rows[0]["text"]))
        except (ValueError, TypeError) as exc:
            raise MilvusUnavailable(f"the meta row of {self.config.where} is not valid") from exc

    def open(self) -> MilvusStore:
        """Read the meta row, for searching.

        Raises:
            IndexNotBuilt: nothing built in these collections yet.
        """
        meta = self.read_meta()
        if meta is None:
            raise IndexNotBuilt(
                f"nothing has been built in {self.config.where} yet: run "
                "`python -m index rebuild` first"
            )
        if meta.format != FORMAT:
            raise IndexMismatch(
                f"{self.config.where} was written in format {meta.format}; this program "
                f"reads {FORMAT}. Run `python -m index rebuild --full`."
            )
        with self.calling("loading the collections"):
            for name in (self.chunks_name, self.articles_name):
                self.client.load_collection(name)
        self.meta = meta
        return self

    def _need_meta(self) -> MilvusMeta:
        if self.meta is None:
            raise IndexNotBuilt(f"{self.config.where} is not open")
        return self.meta

    @property
    def version(self) -> str:
        return self._need_meta().version

    @property
    def size(self) -> int:
        return self._need_meta().chunks

    def check_model(self, model: str) -> None:
        meta = self._need_meta()
        if meta.model != canonical_model_name(model):
            raise IndexMismatch(
                f"{self.config.where} was built with embedding model {meta.model!r} but "
                f"EMBEDDING_MODEL is {model!r}: rebuild it (`python -m index rebuild --full`) "
                "or set EMBEDDING_MODEL to match"
            )

    def check_embedder(self, embedder: Any) -> None:
        """Refuse a query model of another model or backend than the one that built this."""
        self.check_model(embedder.name)
        meta = self._need_meta()
        check_backend(
            meta.embedding_backend, meta.embedding_quantization, embedder, self.config.where
        )
        if embedder.dimension != meta.dimension:
            raise IndexMismatch(
                f"{self.config.where} holds {meta.dimension}-dimensional vectors, the model "
                f"makes {embedder.dimension}: run `python -m index rebuild --full`"
            )

    # -- reading

    def articles(self) -> list[StoredArticle]:
        rows = self._scan(
            self.articles_name,
            "part == 0",
            ["article_id", "title", "source", "path", "url", "date", "hash", "number", "n_chunks"],
        )
        out = [
            StoredArticle(
                row=r["number"],
                id=r["article_id"],
                title=r["title"],
                source=r["source"],
                path=r["path"],
                url=r["url"] or None,
                date=r["date"] or None,
                hash=r["hash"],
                first_chunk=chunk_row(r["number"], 0),
                n_chunks=r["n_chunks"],
            )
            for r in rows
        ]
        return sorted(out, key=lambda a: a.id)

    def article_details(self, article_ids: Sequence[str]) -> dict[str, ArticleDetails]:
        ids = list(dict.fromkeys(article_ids))
        out: dict[str, ArticleDetails] = {}
        for i in range(0, len(ids), 500):
            rows = self._query(
                self.articles_name,
                f"part == 0 and article_id in [{', '.join(map(_literal, ids[i : i + 500]))}]",
                ["article_id", "date", "pages"],
            )
            for r in rows:
                pages = tuple(json.loads(r["pages"])) if r["pages"] else None
                out[r["article_id"]] = ArticleDetails(r["date"] or None, pages)
        return out

    def article_text(self, article_id: str) -> str | None:
        rows = self._query(
            self.articles_name, f"article_id == {_literal(article_id)}", ["part", "text"]
        )
        if not rows:
            return None
        return "".join(r["text"] for r in sorted(rows, key=lambda r: r["part"]))

    def shaping(self, article_ids: Sequence[str]) -> dict[str, ArticleShaping]:
        """None kept here: passages are shaped from the articles' text (`index.search`)."""
        return {}

    def chunk_rows(self, rows: Sequence[int], text: bool = True) -> dict[int, dict[str, Any]]:
        """Metadata (and text) of the given chunk rows, keyed by row (absent rows left out)."""
        ids = [int(r) for r in rows if r >= 0]
        out: dict[int, dict[str, Any]] = {}
        fields = ["row", "ordinal", "start", "end", "article_id", "title", "source", "url"]
        for i in range(0, len(ids), 1000):
            expr = f"row in {ids[i : i + 1000]}"
            for r in self._query(self.chunks_name, expr, fields + ["text"] * text):
                out[r["row"]] = {
                    "ordinal": r["ordinal"], "start": r["start"], "end": r["end"],
                    "article_id": r["article_id"], "title": r["title"], "source": r["source"],
                    "url": r["url"] or None,
                }  # fmt: skip
                if text:
                    out[r["row"]]["text"] = r["text"]
        return out

    def stored_hashes(self) -> dict[str, tuple[str, int]]:
        """Every article's content hash and number, for planning an incremental rebuild."""
        rows = self._scan(self.articles_name, "part == 0", ["article_id", "hash", "number"])
        return {r["article_id"]: (r["hash"], r["number"]) for r in rows}

    # -- searching

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 idf of each term, from its document frequency (a count in Milvus)."""
        n = max(self.size, 1)
        out: dict[str, float] = {}
        for term in dict.fromkeys(terms):
            expr = f"TEXT_MATCH(terms, {_literal(term)})"
            rows = self._query(self.chunks_name, expr, ["count(*)"])
            df = int(rows[0]["count(*)"]) if rows else 0
            out[term] = float(math.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def _best_bm25(self, text: str) -> float:
        """The best BM25 score of any chunk for `text` (0: no term of it is in the chunks)."""
        found = self.client.search(self.chunks_name, data=[text], anns_field="sparse", limit=1)[0]
        return abs(float(found[0].distance)) if len(found) else 0.0

    def candidates(
        self,
        queries: Sequence[str],
        qvecs: np.ndarray | None,
        depth: int,
        mode: Mode,
        dense_weight: float,
    ) -> list[Candidates | None]:
        """Each query's candidates as Milvus ranks them: dense, BM25, or both fused."""
        from pymilvus import AnnSearchRequest, WeightedRanker

        texts = [_analyzed(query_terms(q)) for q in queries]
        out: list[Candidates | None] = []
        with self.calling("a search"):
            for qi, text in enumerate(texts):
                qvec = qvecs[qi] if qvecs is not None else None
                best = self._best_bm25(text) if mode == "hybrid" and text else 0.0
                if mode == "hybrid" and qvec is not None and best > 0:
                    # cosine + BM25 scaled by the query's best, as the FAISS store blends them
                    # (Milvus's own normalisation squashes BM25 through arctan, which costs
                    # ranking quality: docs/benchmarks.md); the ranker wants weights in
                    # [0, 1], and scaling both keeps the order, so the scores are unscaled
                    a, b = dense_weight, (1.0 - dense_weight) / best
                    scale = max(a, b)
                    requests = [
                        AnnSearchRequest(
                            data=[qvec.tolist()], anns_field="dense", param={}, limit=depth
                        ),
                        AnnSearchRequest(data=[text], anns_field="sparse", param={}, limit=depth),
                    ]
                    found = self.client.hybrid_search(
                        self.chunks_name, requests,
                        WeightedRanker(a / scale, b / scale, norm_score=False),
                        limit=depth, output_fields=["dense"],
                    )[0]  # fmt: skip
                    out.append(_candidates(found, qvec, scale=scale))
                elif mode != "lexical" and qvec is not None:  # dense; hybrid with no term known
                    found = self.client.search(
                        self.chunks_name, data=[qvec.tolist()], anns_field="dense",
                        limit=depth, output_fields=["dense"],
                    )[0]  # fmt: skip
                    out.append(_candidates(found, qvec))
                elif mode == "lexical" and text:
                    found = self.client.search(
                        self.chunks_name, data=[text], anns_field="sparse", limit=depth,
                    )[0]  # fmt: skip
                    out.append(_candidates(found, None, lexical=True) if len(found) else None)
                else:
                    out.append(None)
        return out

    # -- writing (index.milvus_rebuild)

    def create(self, dimension: int) -> None:
        """Create the collections (and their indexes) when they do not exist yet."""
        from pymilvus import DataType, Function, FunctionType

        with self.calling("creating the collections"):
            c = self.client
            if not c.has_collection(self.chunks_name):
                s = c.create_schema(auto_id=False)
                s.add_field("row", DataType.INT64, is_primary=True)
                s.add_field("article_id", DataType.VARCHAR, max_length=ID_BYTES)
                for name in ("ordinal", "start", "end", "tokens"):
                    s.add_field(name, DataType.INT64)
                s.add_field("title", DataType.VARCHAR, max_length=ID_BYTES * 2)
                s.add_field("source", DataType.VARCHAR, max_length=ID_BYTES * 2)
                s.add_field("url", DataType.VARCHAR, max_length=ID_BYTES * 2)
                s.add_field("hash", DataType.VARCHAR, max_length=64)
                s.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
                s.add_field(
                    "terms", DataType.VARCHAR, max_length=VARCHAR_BYTES, enable_analyzer=True,
                    enable_match=True, analyzer_params={"tokenizer": "standard"},
                )  # fmt: skip
                s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
                s.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
                s.add_function(
                    Function(
                        name="bm25", function_type=FunctionType.BM25,
                        input_field_names=["terms"], output_field_names=["sparse"],
                    )
                )  # fmt: skip
                ip = c.prepare_index_params()
                # inner product is cosine on the normalised vectors every embedder returns
                ip.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
                ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
                ip.add_index("article_id", index_type="INVERTED")
                c.create_collection(
                    self.chunks_name, schema=s, index_params=ip, consistency_level="Strong"
                )
            if not c.has_collection(self.articles_name):
                s = c.create_schema(auto_id=False)
                s.add_field("key", DataType.VARCHAR, max_length=ID_BYTES + 16, is_primary=True)
                s.add_field("article_id", DataType.VARCHAR, max_length=ID_BYTES)
                s.add_field("part", DataType.INT64)
                s.add_field("number", DataType.INT64)
                s.add_field("n_chunks", DataType.INT64)
                for name in ("title", "source", "path", "url"):
                    s.add_field(name, DataType.VARCHAR, max_length=ID_BYTES * 2)
                s.add_field("date", DataType.VARCHAR, max_length=64)
                s.add_field("hash", DataType.VARCHAR, max_length=64)
                s.add_field("pages", DataType.VARCHAR, max_length=VARCHAR_BYTES)
                s.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
                s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector
                ip = c.prepare_index_params()
                ip.add_index("unused", index_type="AUTOINDEX", metric_type="IP")
                ip.add_index("article_id", index_type="INVERTED")
                c.create_collection(
                    self.articles_name, schema=s, index_params=ip, consistency_level="Strong"
                )

    def drop(self) -> None:
        """Drop the collections (a rebuild for another model dimension starts afresh)."""
        with self.calling("dropping the collections"):
            for name in (self.chunks_name, self.articles_name):
                _loaded.discard((self.config, name))
                if self.client.has_collection(name):
                    self.client.drop_collection(name)

    def delete_articles(self, article_ids: Sequence[str]) -> None:
        ids = list(article_ids)
        with self.calling("deleting articles"):
            for i in range(0, len(ids), 500):
                expr = f"article_id in [{', '.join(map(_literal, ids[i : i + 500]))}]"
                self.client.delete(self.chunks_name, filter=expr)
                self.client.delete(self.articles_name, filter=expr)

    def put_article(
        self,
        article: Article,
        content_hash: str,
        number: int,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
    ) -> None:
        """Replace one article: its old chunks and text parts go, the new ones come in.

        The text is written before the chunks, so a chunk found by a concurrent search
        never points into text that is not there yet.
        """
        if len(chunks) > MAX_CHUNKS_PER_ARTICLE:
            raise MilvusUnavailable(
                f"{article.id} has {len(chunks)} chunks, more than the {MAX_CHUNKS_PER_ARTICLE} "
                "an article may have in Milvus"
            )
        self.delete_articles([article.id])
        parts = [
            article.text[i : i + TEXT_PART_CHARS]
            for i in range(0, max(len(article.text), 1), TEXT_PART_CHARS)
        ]
        article_rows = [
            {
                "key": f"{p}:{article.id}",
                "article_id": article.id,
                "part": p,
                "number": number,
                "n_chunks": len(chunks),
                "title": _fit(article.title, ID_BYTES * 2) if p == 0 else "",
                "source": _fit(article.source, ID_BYTES * 2) if p == 0 else "",
                "path": _fit(article.path, ID_BYTES * 2) if p == 0 else "",
                "url": _fit(article.url or "", ID_BYTES * 2) if p == 0 else "",
                "date": (article.date or "")[:64] if p == 0 else "",
                "hash": content_hash,
                "text": text,
                "unused": [1.0, 0.0],
                "pages": json.dumps(list(article.pages)) if p == 0 and article.pages else "",
            }
            for p, text in enumerate(parts)
        ]
        chunk_rows = [
            {
                "row": chunk_row(number, c.ordinal),
                "article_id": article.id,
                "ordinal": c.ordinal,
                "start": c.start,
                "end": c.end,
                "tokens": c.tokens,
                "title": _fit(article.title, ID_BYTES * 2),
                "source": _fit(article.source, ID_BYTES * 2),
                "url": _fit(article.url or "", ID_BYTES * 2),
                "hash": content_hash,
                "text": _fit(c.text),
                "terms": _fit(_analyzed(document_terms(f"{article.title}\n{c.text}"))),
                "dense": vector.tolist(),
            }
            for c, vector in zip(chunks, np.asarray(vectors, dtype=np.float32), strict=True)
        ]
        with self.calling(f"writing {article.id}"):
            self.client.insert(self.articles_name, article_rows)
            for i in range(0, len(chunk_rows), 500):
                self.client.insert(self.chunks_name, chunk_rows[i : i + 500])

    def write_meta(self, meta: MilvusMeta) -> None:
        """Record what the collections hold; readers switch to the new version on seeing it."""
        row = {
            "key": META_KEY, "article_id": "", "part": -1, "number": -1, "n_chunks": meta.chunks,
            "title": "", "source": "", "path": "", "url": "", "date": "", "hash": "",
            "pages": "", "text": json.dumps(asdict(meta)), "unused": [1.0, 0.0],
        }  # fmt: skip
        with self.calling("writing the meta row"):
            self.client.upsert(self.articles_name, [row])
            for name in (self.chunks_name, self.articles_name):
                self.client.flush(name)  # seal what the rebuild wrote: searched indexed
        self.meta = meta

    def count_chunks(self) -> int:
        rows = self._query(self.chunks_name, "", ["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0


def _candidates(
    found: Sequence[Any], qvec: np.ndarray | None, *, lexical: bool = False, scale: float = 1.0
) -> Candidates:
    rows = np.fromiter((int(h.id) for h in found), dtype=np.int64, count=len(found))
    raw = np.fromiter((float(h.distance) for h in found), dtype=np.float32, count=len(found))
    dense = None
    if qvec is not None:  # the exact cosine of every hit, from its returned vector
        vectors = np.asarray([h["entity"]["dense"] for h in found], dtype=np.float32)
        dense = (vectors.reshape(len(found), -1) @ qvec).astype(np.float32)
    if lexical:  # Milvus Lite reports BM25 negated, a server as it is: both are >= 0
        scores = np.abs(raw)
        return Candidates(rows=rows, scores=scores, dense=None, lexical=scores)
    return Candidates(rows=rows, scores=raw * np.float32(scale), dense=dense, lexical=None)


def open_milvus(config: MilvusConfig) -> MilvusStore:
    """The collections opened for searching.

    Raises:
        MilvusUnavailable: Milvus missing or unreachable.
        IndexNotBuilt: nothing built there yet.
    """
    return MilvusStore(config).open()


def published_version(config: MilvusConfig) -> str | None:
    """The version the collections hold, None when nothing was built (one small query)."""
    meta = MilvusStore(config).read_meta()
    return meta.version if meta is not None else None
