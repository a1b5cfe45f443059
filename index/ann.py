"""Choosing and building the FAISS index over normalised chunk vectors.

Inner product equals cosine similarity on L2-normalised vectors, so every index here uses
METRIC_INNER_PRODUCT. Exact search is fast enough for tens of thousands of chunks; past
`ann_threshold` an HNSW graph (or IVF when asked) keeps latency flat as the corpus grows.
FAISS ids are the chunk rows of the metadata database.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnnConfig:
    index_type: str = "auto"  # auto | flat | hnsw | ivf
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32

    def resolve(self, n: int) -> str:
        if self.index_type == "ivf" and n == 0:
            return "flat"  # nothing to train the clusters on
        if self.index_type != "auto":
            return self.index_type
        return "hnsw" if n >= self.ann_threshold else "flat"


def check_vectors(vectors: np.ndarray, dimension: int | None = None) -> np.ndarray:
    """FAISS wants C-contiguous float32 of shape (n, d): fail early with a precise error."""
    if vectors.ndim != 2:
        raise TypeError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    if dimension is not None and vectors.shape[1] != dimension:
        raise TypeError(f"expected vectors of dimension {dimension}, got {vectors.shape[1]}")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def build_index(vectors: np.ndarray, config: AnnConfig) -> tuple[faiss.Index, str]:
    """Build the index of the configured (or size-chosen) type over `vectors` (rows = ids)."""
    vectors = check_vectors(vectors)
    n, d = vectors.shape
    kind = config.resolve(n)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search
        index.add(vectors)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors
        if n > nlist * 256:
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(n, nlist * 256, replace=False)]
        index.train(sample)
        index.add(vectors)
        index.nprobe = min(config.ivf_nprobe, nlist)
    elif kind == "flat":
        index = faiss.IndexFlatIP(d)
        index.add(vectors)
    else:
        raise ValueError(f"unknown index type {kind!r} (expected auto, flat, hnsw or ivf)")
    log.info("built %s index over %d vectors of dimension %d", kind, n, d)
    return index, kind


def tune(index: faiss.Index, config: AnnConfig) -> None:
    """Apply search-time parameters, which FAISS does not keep in the saved file."""
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = config.hnsw_ef_search
    if hasattr(index, "nprobe"):
        index.nprobe = min(config.ivf_nprobe, getattr(index, "nlist", config.ivf_nprobe))
