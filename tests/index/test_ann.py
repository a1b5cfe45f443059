"""The FAISS index types: building, auto's choice, memory-mapped reading, exact re-scoring,
and each type through rebuild, StoredIndex and Searcher."""

from __future__ import annotations

import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import ann
from index.lexical import LexicalIndex
from index.rebuild import ann_config, rebuild
from index.search import Searcher
from index.settings import IndexSettings
from index.store import open_current

LOSSLESS = ("flat", "hnsw", "ivf")


def _unit(n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors, like embeddings: a few directions plus noise."""
    centres = np.random.default_rng(42).standard_normal((8, d))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 8, n)] + 0.6 * rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def test_auto_chooses_flat_below_the_threshold_and_the_measured_type_above():
    config = ann.AnnConfig(ann_threshold=1000)
    assert config.resolve(0) == config.resolve(999) == "flat"
    assert config.resolve(1000) == config.resolve(10**6) == ann.AUTO_LARGE
    assert ann.AUTO_LARGE in ann.INDEX_TYPES
    assert ann.AnnConfig(index_type="hnsw", ann_threshold=10).resolve(5) == "hnsw"
    # nothing to train on: an empty version is flat whatever was asked
    for kind in ("ivf", "ivf-sq8", "ivf-pq", "hnsw-sq8"):
        assert ann.AnnConfig(index_type=kind).resolve(0) == "flat"
    assert ann.AnnConfig(index_type="ivf-pq").resolve(1) == "flat"
    assert ann.AnnConfig(index_type="ivf").resolve(1) == "ivf"


def test_every_setting_value_is_an_index_type():
    values = IndexSettings.model_fields["index_type"].annotation.__args__
    assert set(values) == {"auto", *ann.INDEX_TYPES}


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown index type"):
        ann.build_index(_unit(10), ann.AnnConfig(index_type="lsh"))


@pytest.mark.parametrize("kind", ann.INDEX_TYPES)
def test_each_type_round_trips_memory_mapped_and_finds_the_exact_neighbours(
    tmp_path: Path, kind: str
):
    vectors = _unit(3000)
    queries = _unit(40, seed=1)
    index, built = ann.build_index(vectors, ann.AnnConfig(index_type=kind, ivf_nprobe=64))
    assert built == kind and index.ntotal == len(vectors)
    path = tmp_path / "dense.faiss"
    faiss.write_index(index, str(path))
    loaded = ann.read_index(path)
    ann.tune(loaded, ann.AnnConfig(ivf_nprobe=64))
    assert loaded.ntotal == len(vectors)
    # PQ at 8 bytes per vector only ranks coarsely: it needs many more candidates
    rescore = 16 if kind == "ivf-pq" else 4
    scores, ids = ann.search(loaded, kind, vectors, queries, 10, rescore=rescore)
    exact = _exact(vectors, queries, 10)
    found = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact, strict=True)])
    assert found >= 0.95, (kind, found)
    if kind in ann.LOSSY:  # re-scored: the scores are the exact cosines, in order
        expected = np.einsum("qd,qkd->qk", queries, vectors[ids])
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(scores, axis=1) <= 1e-7)


def test_lossy_search_with_fewer_vectors_than_asked_pads_with_minus_one():
    vectors = _unit(5)
    index, kind = ann.build_index(vectors, ann.AnnConfig(index_type="hnsw-sq8"))
    scores, ids = ann.search(index, kind, vectors, vectors[:1], 8, rescore=2)
    assert sorted(ids[0][:5]) == [0, 1, 2, 3, 4] and list(ids[0][5:]) == [-1] * 3
    assert ids[0][0] == 0 and np.isneginf(scores[0][5:]).all()


def test_lexical_index_loads_memory_mapped_with_the_same_scores(tmp_path: Path):
    docs = [
        "the harbour crane lifted the red container",
        "a glacier carved the valley over centuries",
        "harbour pilots guide ships past the glacier tongue",
        "orchard apples ripen late in a cold valley",
    ] * 5
    built = LexicalIndex.build(docs)
    built.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25", len(docs))
    loaded.check()
    assert isinstance(loaded._retriever.scores["data"], np.memmap)
    for query in ("harbour glacier", "cold valley apples", "glacier glacier"):
        np.testing.assert_array_equal(loaded.scores(query), built.scores(query))
        assert loaded.scores(query).max() > 0
    assert loaded.scores("zebra") is None


# ---------------------------------------------------------------- through the store


@pytest.fixture(scope="module")
def flat_once(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """Sixty short articles on a few topics, indexed once (flat)."""
    from tests.index.test_rebuild import ARTICLES, _synthetic_articles, make_settings
    from tests.index.test_rebuild import write_articles as write

    base = tmp_path_factory.mktemp("ann")
    write(base / "articles", ARTICLES | _synthetic_articles(60))
    rebuild(make_settings(base, index_type="flat"), lambda: embedder)
    return base


@pytest.mark.parametrize("kind", [k for k in ann.INDEX_TYPES if k not in LOSSLESS])
def test_each_new_type_through_rebuild_store_and_searcher(
    flat_once: Path, tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch, kind: str
):
    """Forced, each type is laid out by rebuild, recorded, memory-mapped and searched like
    exact search: on a small index the re-scored candidates hold every exact neighbour."""
    from tests.index.test_rebuild import make_settings

    shutil.copytree(flat_once / "articles", tmp_path / "articles")
    shutil.copytree(flat_once / "index", tmp_path / "index")
    exact_stored = open_current(tmp_path / "index")
    exact = Searcher(exact_stored, embedder, passages="chunks")
    questions = [
        "Why does sourdough taste sour?",
        "lava eruption and evacuation",
        "notes about the harbour",
        "what is said about the glacier and the meadow",
    ]
    expected = {q: [h.chunk_id for h in exact.search(q, k=5)] for q in questions}
    exact_stored.close()
    monkeypatch.setenv("INDEX_TYPE", kind)
    settings = make_settings(tmp_path)
    rebuild(settings, lambda: embedder)
    stored = open_current(settings.index_dir, ann_config(settings))
    try:
        assert stored.manifest.index_type == kind
        assert stored.dense.ntotal == stored.size
        assert isinstance(stored.vectors, np.memmap)
        assert isinstance(stored.lexical._retriever.scores["indices"], np.memmap)
        searcher = Searcher(stored, embedder, passages="chunks")
        for q in questions:
            assert [h.chunk_id for h in searcher.search(q, k=5)] == expected[q], (kind, q)
        hits = Searcher(stored, embedder).search("Why does sourdough taste sour?", k=3)
        assert hits[0].article_id == "bread.txt"
    finally:
        stored.close()
