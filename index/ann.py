"""Choosing, building, reading and querying the FAISS index over normalised chunk vectors.

Inner product equals cosine similarity on L2-normalised vectors, so every index here uses
METRIC_INNER_PRODUCT. FAISS ids are the chunk rows of the metadata database.

Index types (INDEX_TYPE), measured at 100k and 1M chunks in docs/benchmarks.md:

- `flat`: exact search, fp32. Fast enough for tens of thousands of chunks.
- `hnsw`, `hnsw-sq8`, `hnsw-fp16`: an HNSW graph over fp32, 8-bit or fp16 copies of the
  vectors. The compressed ones are a quarter or half the size, which decides whether a
  million chunks fit in a small serving process.
- `ivf`, `ivf-sq8`, `ivf-pq`: inverted lists (k-means cells) of fp32, 8-bit or product-
  quantized (d/8 bytes per vector) codes.
- `auto`: `flat` below `ann_threshold` chunks, `AUTO_LARGE` (IVF-SQ8) above. At 100k and
  1M chunks it matched the best recall of the candidates with a quarter of the fp32 size,
  opened fastest (HNSW reads its graph on load) and built 4x faster than HNSW-SQ8, which
  also makes the appends of an incremental rebuild cheap.

A lossy index (sq8, fp16, pq) only proposes candidates: `search` fetches `rescore` times as
many as asked and ranks them by their exact cosine from the memory-mapped fp32 vectors
(`vectors.npy`), so what it returns, and its scores, are those of exact search whenever the
true neighbours are among the proposals.

Indexes are read memory-mapped (`read_index`): a million-chunk index opens in milliseconds
and only the pages a query touches are read, from the page cache shared by every process.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "hnsw-sq8", "hnsw-fp16", "ivf", "ivf-sq8", "ivf-pq")
AUTO_LARGE = "ivf-sq8"
LOSSY = ("hnsw-sq8", "hnsw-fp16", "ivf-sq8", "ivf-pq")
TRAINED = ("hnsw-sq8", "ivf", "ivf-sq8", "ivf-pq")
_SQ = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}
TRAIN_PER_LIST = 64  # k-means sample per IVF list (FAISS warns below 39)


@dataclass(frozen=True, slots=True)
class AnnConfig:
    index_type: str = "auto"  # auto or one of INDEX_TYPES
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32
    rescore: int = 2  # candidates fetched per result wanted from a lossy index

    def resolve(self, n: int) -> str:
        if self.index_type != "auto":
            if n < (2 if self.index_type == "ivf-pq" else 1) and self.index_type in TRAINED:
                return "flat"  # nothing to train the clusters or the quantizer on
            return self.index_type
        return AUTO_LARGE if n >= self.ann_threshold else "flat"


def check_vectors(vectors: np.ndarray, dimension: int | None = None) -> np.ndarray:
    """FAISS wants C-contiguous float32 of shape (n, d): fail early with a precise error."""
    if vectors.ndim != 2:
        raise TypeError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    if dimension is not None and vectors.shape[1] != dimension:
        raise TypeError(f"expected vectors of dimension {dimension}, got {vectors.shape[1]}")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def ivf_lists(n: int) -> int:
    """Number of IVF lists: ~4 sqrt(n), with at least 39 vectors per list to train on."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1)))


def pq_shape(n: int, d: int) -> tuple[int, int]:
    """Sub-quantizers and bits of IVF-PQ: one byte per 8 dimensions, fewer bits on tiny sets."""
    m = next(m for m in range(max(d // 8, 1), 0, -1) if d % m == 0)
    bits = max(1, min(8, int(math.log2(max(n, 2)))))
    return m, bits


def _training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    if len(vectors) <= size:
        return vectors
    rng = np.random.default_rng(0)
    return vectors[np.sort(rng.choice(len(vectors), size, replace=False))]


def new_index(kind: str, vectors: np.ndarray, config: AnnConfig) -> faiss.Index:
    """An empty index of `kind`, trained on `vectors` where the type needs training."""
    n, d = vectors.shape
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(d)
    if kind.startswith("hnsw"):
        storage = kind.partition("-")[2]
        if storage:
            index = faiss.IndexHNSWSQ(d, _SQ[storage], config.hnsw_m, ip)
            index.train(_training_sample(vectors, 100_000))
        else:
            index = faiss.IndexHNSWFlat(d, config.hnsw_m, ip)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        return index
    if kind.startswith("ivf"):
        nlist = ivf_lists(n)
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, ip)
        elif kind == "ivf-sq8":
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, _SQ["sq8"], ip)
        elif kind == "ivf-pq":
            m, bits = pq_shape(n, d)
            index = faiss.IndexIVFPQ(quantizer, d, nlist, m, bits, ip)
        else:
            raise ValueError(f"unknown index type {kind!r} (expected auto or {INDEX_TYPES})")
        index.cp.max_points_per_centroid = TRAIN_PER_LIST
        index.train(_training_sample(vectors, max(nlist * TRAIN_PER_LIST, 10_000)))
        return index
    raise ValueError(f"unknown index type {kind!r} (expected auto or one of {INDEX_TYPES})")


def build_index(vectors: np.ndarray, config: AnnConfig) -> tuple[faiss.Index, str]:
    """Build the index of the configured (or size-chosen) type over `vectors` (rows = ids)."""
    vectors = check_vectors(vectors)
    n, d = vectors.shape
    kind = config.resolve(n)
    index = new_index(kind, vectors, config)
    index.add(vectors)
    tune(index, config)
    log.info("built %s index over %d vectors of dimension %d", kind, n, d)
    return index, kind


def tune(index: faiss.Index, config: AnnConfig) -> None:
    """Apply search-time parameters, which FAISS does not keep in the saved file."""
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = config.hnsw_ef_search
    if hasattr(index, "nprobe"):
        index.nprobe = min(config.ivf_nprobe, getattr(index, "nlist", config.ivf_nprobe))


def read_index(path: Path) -> faiss.Index:
    """Read an index memory-mapped where FAISS can (flat codes, HNSW graph, IVF lists).

    Raises:
        RuntimeError: FAISS could not parse the file.
    """
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def search(
    index: faiss.Index, kind: str, vectors: np.ndarray, queries: np.ndarray, k: int, rescore: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top `k` rows per query (scores, ids; -1 where fewer exist), exact cosine for lossy types.

    Args:
        vectors: the fp32 vectors (rows = ids) that lossy candidates are re-scored from.
    """
    queries = check_vectors(queries, index.d)
    if kind not in LOSSY or rescore <= 1:
        return index.search(queries, k)
    fetch = min(max(k * rescore, k), index.ntotal) if index.ntotal else k
    _, found = index.search(queries, fetch)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for qi, row in enumerate(found):
        rows = np.sort(row[row >= 0])  # sorted: sequential reads of the memory map
        if not len(rows):
            continue
        exact = np.asarray(vectors[rows] @ queries[qi], dtype=np.float32)
        top = np.argsort(-exact, kind="stable")[:k]
        scores[qi, : len(top)] = exact[top]
        ids[qi, : len(top)] = rows[top]
    return scores, ids
