"""Search over a built index: dense, lexical and hybrid modes with the real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from index.errors import IndexDamaged, IndexMismatch
from index.rebuild import rebuild
from index.search import MODES, Searcher, fuse, top_rows
from index.settings import IndexSettings
from index.store import current_version_dir, open_current

OBAMA_QUESTION = "what did Obama say to Putin?"

ORCHARD = "\n".join(
    f"The orchard keeper planted row {i} with {variety} apple trees in spring {1990 + i}. "
    f"Row {i} was watered from the {source} and pruned every winter."
    for i, (variety, source) in enumerate(
        [
            ("Bramley", "old well"),
            ("Cox", "river"),
            ("Gala", "rain tank"),
            ("Fuji", "canal"),
            ("Braeburn", "spring"),
            ("Jonagold", "pond"),
            ("Pink Lady", "lake"),
            ("Granny Smith", "stream"),
        ]
        * 3
    )
)
PART_NUMBER = (
    "Spare parts bulletin\n"
    "The replacement valve for the boiler is catalogued as part QX-7731. "
    "Fitters should order it directly from the depot."
)


@pytest.fixture(scope="module")
def seed_searcher(seed_index: Path, embedder):
    stored = open_current(seed_index)
    yield Searcher(stored, embedder)
    stored.close()


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, embedder, seeds_dir: Path) -> Path:
    """The seed, a long article chunked with heavy overlap, and a part-number bulletin."""
    base = tmp_path_factory.mktemp("small")
    folder = base / "articles"
    folder.mkdir()
    (folder / "seed.txt").write_text(next(seeds_dir.glob("*.txt")).read_text(encoding="utf-8"))
    (folder / "orchard.txt").write_text("The orchard\n" + ORCHARD, encoding="utf-8")
    (folder / "parts.txt").write_text(PART_NUMBER, encoding="utf-8")
    settings = IndexSettings(
        articles_dir=folder, index_dir=base / "index", chunk_tokens=60, chunk_overlap_tokens=30
    )
    rebuild(settings, lambda: embedder)
    return base / "index"


@pytest.fixture(scope="module")
def small_searcher(small_index: Path, embedder):
    stored = open_current(small_index)
    yield Searcher(stored, embedder)
    stored.close()


def _check_hits(searcher: Searcher, hits) -> None:
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        text = searcher.stored.article_text(h.article_id)
        assert text is not None and text[h.start : h.end] == h.text
        assert h.chunk_id.startswith(h.article_id + "#")
        assert set(h.to_json()) == {
            "rank", "score", "chunk_id", "article_id", "title", "source", "start", "end", "text",
            "also_in",
        }  # fmt: skip


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_seed_question_finds_the_quote(seed_searcher: Searcher, mode: str):
    hits = seed_searcher.search(OBAMA_QUESTION, k=1, mode=mode)
    assert len(hits) == 1
    assert "cut it out" in hits[0].text
    _check_hits(seed_searcher, hits)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_returns_consistent_hits(small_searcher: Searcher, mode: str):
    hits = small_searcher.search("which apple variety was watered from the canal?", 5, mode)
    assert hits
    _check_hits(small_searcher, hits)
    assert hits[0].article_id == "orchard.txt"
    if mode != "lexical":
        assert all(h.dense_score is not None for h in hits)
    if mode != "dense":
        assert hits[0].lexical_score and hits[0].lexical_score > 0


def test_exact_rare_term_is_found_lexically(small_searcher: Searcher):
    for mode in ("lexical", "hybrid"):
        hits = small_searcher.search("QX-7731", k=1, mode=mode)
        assert hits[0].article_id == "parts.txt", mode


def test_overlapping_windows_of_one_article_are_not_both_returned(small_searcher: Searcher):
    stored = small_searcher.stored
    query = "apple trees planted in the orchard"
    # The index holds overlapping windows, and raw FAISS ranks several of them together ...
    _, ids = stored.dense.search(small_searcher.embedder.encode_queries([query]), 10)
    raw = stored.chunk_rows([int(i) for i in ids[0] if i >= 0])
    bare = stored.chunk_rows(list(raw), text=False)  # what shaping reads: no text cut out
    assert bare == {r: {k: v for k, v in m.items() if k != "text"} for r, m in raw.items()}
    assert all(
        stored.article_text(m["article_id"])[m["start"] : m["end"]] == m["text"]
        for m in raw.values()
    )
    spans = [(m["start"], m["end"]) for m in raw.values() if m["article_id"] == "orchard.txt"]
    assert any(a != b and a[0] < b[1] and b[0] < a[1] for a in spans for b in spans), (
        "test data should produce overlapping candidates"
    )
    # ... but search returns distinct passages.
    for mode in MODES:
        hits = small_searcher.search(query, k=10, mode=mode)
        _check_hits(small_searcher, hits)
        ours = [(h.start, h.end) for h in hits if h.article_id == "orchard.txt"]
        assert len(ours) >= 2
        for i, a in enumerate(ours):
            for b in ours[i + 1 :]:
                assert a[1] <= b[0] or b[1] <= a[0], f"{mode}: {a} overlaps {b}"


def test_stopword_only_query(small_searcher: Searcher):
    assert small_searcher.search("what is it that they did?", mode="lexical") == []
    # hybrid falls back to the dense side instead of failing
    assert small_searcher.search("what is it that they did?", mode="hybrid")


def test_batch_equals_single_searches(small_searcher: Searcher):
    queries = [OBAMA_QUESTION, "QX-7731", "the of and"]
    for mode in MODES:
        batch = small_searcher.search_batch(queries, k=3, mode=mode)
        assert len(batch) == len(queries)
        for q, hits in zip(queries, batch, strict=True):
            single = small_searcher.search(q, k=3, mode=mode)
            assert [h.chunk_id for h in hits] == [h.chunk_id for h in single]
            assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)
    assert small_searcher.search_batch([], k=3) == []


def test_k_limits_results(small_searcher: Searcher):
    assert len(small_searcher.search("apple", k=2)) == 2
    assert small_searcher.search("apple", k=0) == []


def test_unknown_mode_is_rejected(small_searcher: Searcher):
    with pytest.raises(ValueError, match="unknown search mode"):
        small_searcher.search("apple", mode="fuzzy")  # type: ignore[arg-type]


def test_empty_index_returns_nothing(tmp_path: Path, embedder):
    (tmp_path / "articles").mkdir()
    settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index")
    rebuild(settings, lambda: embedder)
    stored = open_current(settings.index_dir)
    try:
        searcher = Searcher(stored, embedder)
        for mode in MODES:
            assert searcher.search("anything", k=5, mode=mode) == []
        assert searcher.search_batch(["a", "b"], k=5) == [[], []]
        assert stored.lexical is None
    finally:
        stored.close()


def test_searcher_refuses_an_index_of_another_model(seed_index: Path, embedder):
    class Renamed:
        name = "someone/other-model"
        dimension = embedder.dimension

    stored = open_current(seed_index)
    try:
        with pytest.raises(IndexMismatch, match="rebuild"):
            Searcher(stored, Renamed())  # type: ignore[arg-type]
    finally:
        stored.close()


def test_fuse_blends_cosine_with_bm25_scaled_by_the_best():
    dense = np.array([0.9, 0.5, 0.1], dtype=np.float32)
    lexical = np.array([0.0, 4.0, 8.0], dtype=np.float32)
    assert fuse("dense", dense, lexical, 0.5).tolist() == pytest.approx(dense.tolist())
    assert fuse("lexical", dense, lexical, 0.5).tolist() == pytest.approx(lexical.tolist())
    assert fuse("hybrid", dense, lexical, 0.5).tolist() == pytest.approx([0.45, 0.5, 0.55])
    assert fuse("hybrid", dense, None, 0.5).tolist() == pytest.approx(dense.tolist())
    zero = np.zeros(3, dtype=np.float32)
    assert fuse("hybrid", dense, zero, 0.5).tolist() == pytest.approx((dense * 0.5).tolist())


def test_metadata_damaged_while_serving_is_a_typed_error(
    small_index: Path, tmp_path: Path, embedder
):
    root = tmp_path / "index"
    shutil.copytree(small_index, root)
    stored = open_current(root)
    try:
        searcher = Searcher(stored, embedder)
        assert searcher.search("part QX-7731", k=1)[0].article_id == "parts.txt"
        db = current_version_dir(root) / "meta.sqlite"
        with open(db, "r+b") as fh:  # in place: the open connection sees it
            fh.write(b"\xff" * 4096)
        with pytest.raises(IndexDamaged, match=r"meta\.sqlite cannot be read"):
            searcher.search("part QX-7731", k=1)
    finally:
        stored.close()


@pytest.mark.parametrize("positive", [0.001, 0.05, 0.4, 1.0])
@pytest.mark.parametrize("depth", [1, 50, 200])
def test_top_rows_are_the_best_positive_scores(positive: float, depth: int) -> None:
    rng = np.random.default_rng(int(positive * 1000) + depth)
    n = 200_000
    scores = np.zeros(n, dtype=np.float32)
    hit = rng.random(n) < positive
    scores[hit] = rng.gamma(2.0, 2.0, int(hit.sum())).astype(np.float32)
    scores[rng.integers(0, n, 30)] = scores.max()  # ties at the top
    rows = top_rows(scores, depth)
    assert len(set(rows.tolist())) == len(rows) == min(depth, int((scores > 0).sum()))
    best = np.sort(scores[scores > 0])[::-1][:depth]
    assert np.array_equal(np.sort(scores[rows])[::-1], best)
    assert np.all(scores[rows] > 0)
