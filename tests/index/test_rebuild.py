"""Incremental rebuilds, atomic publishing, locking, index types and live reloading.

In-process, with the real model (the session `embedder`), wrapped only to count what gets
embedded: "re-embeds nothing" is then a fact, not an inference from timings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index import store
from index.ann import AUTO_LARGE
from index.errors import IndexFolderError, IndexMismatch, RebuildBusy
from index.live import LiveIndex
from index.rebuild import ann_config, rebuild
from index.search import Searcher
from index.settings import IndexSettings
from index.store import TMP_PREFIX, current_version_name, open_current, rebuild_lock, versions_dir

ARTICLES = {
    "bread.txt": "How sourdough bread is made\n"
    "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria. "
    "The baker feeds the starter with flour and water for days before mixing the dough. "
    "A long, cool fermentation gives the loaf its sour taste and open crumb.\n\n"
    "The dough is shaped, proofed overnight and baked in a very hot Dutch oven.",
    "volcano.txt": "Volcano erupts in Iceland\n"
    "A fissure eruption began on the Reykjanes peninsula on Monday night. "
    "Lava fountains reached fifty metres and the nearby town of Grindavik was evacuated. "
    "Scientists said the magma tunnel beneath the town had been filling for weeks.",
    "chess.txt": "Chess champion retains title\n"
    "The world chess champion retained the title after a tense rapid tie-break. "
    "Both players had drawn all twelve classical games of the match. "
    "The decisive game turned on a knight sacrifice in a Sicilian Defence.",
}

NEW_ARTICLE = (
    "Honeybees dance to share directions\n"
    "A forager honeybee returning to the hive performs a waggle dance. "
    "The angle of the dance tells other bees the direction of the flowers relative to the sun, "
    "and its length tells them the distance."
)


class CountingEmbedder:
    """The real embedder, counting the documents it is asked to embed."""

    def __init__(self, inner, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.tokenizer = inner.tokenizer
        self.documents = 0
        self.loads = 0

    def encode_documents(self, texts, *, batch_size: int = 64, progress: bool = False):
        self.documents += len(texts)
        return self.inner.encode_documents(texts, batch_size=batch_size)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def get(self) -> CountingEmbedder:
        self.loads += 1
        return self


def write_articles(folder: Path, articles: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")


def make_settings(tmp_path: Path, **overrides) -> IndexSettings:
    return IndexSettings(
        articles_dir=tmp_path / "articles", index_dir=tmp_path / "index", **overrides
    )


def vectors_by_article(root: Path) -> dict[str, np.ndarray]:
    stored = open_current(root)
    try:
        return {
            a.id: np.array(stored.vectors[a.first_chunk : a.first_chunk + a.n_chunks])
            for a in stored.articles()
        }
    finally:
        stored.close()


def manifest(root: Path) -> dict:
    return json.loads((store.current_version_dir(root) / "manifest.json").read_text())


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """Three articles, indexed once per module (tests get copies)."""
    base = tmp_path_factory.mktemp("built")
    write_articles(base / "articles", ARTICLES)
    settings = make_settings(base)
    counter = CountingEmbedder(embedder)
    report = rebuild(settings, counter.get)
    assert (report.added, report.updated, report.unchanged, report.removed) == (3, 0, 0, 0)
    assert report.published and report.articles == 3
    assert counter.documents == report.chunks > 0
    return base


@pytest.fixture
def built(built_once: Path, tmp_path: Path, embedder) -> tuple[IndexSettings, CountingEmbedder]:
    """A private copy of the three-article folder and its index."""
    shutil.copytree(built_once / "articles", tmp_path / "articles")
    shutil.copytree(built_once / "index", tmp_path / "index")
    return make_settings(tmp_path), CountingEmbedder(embedder)


def test_nothing_changed_embeds_nothing_and_loads_no_model(built):
    settings, counter = built
    before = current_version_name(settings.index_dir)
    report = rebuild(settings, counter.get)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 3)
    assert not report.published
    assert counter.loads == 0 and counter.documents == 0
    assert current_version_name(settings.index_dir) == before
    assert report.version == before


def test_modify_delete_add_touch_only_what_changed(built, tmp_path: Path):
    settings, counter = built
    folder = settings.articles_dir
    first = vectors_by_article(settings.index_dir)

    (folder / "volcano.txt").write_text(
        ARTICLES["volcano.txt"] + " Flights were not disrupted.", encoding="utf-8"
    )
    report = rebuild(settings, counter.get)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, 2)
    assert report.published and not report.full
    second = vectors_by_article(settings.index_dir)
    assert counter.documents == len(second["volcano.txt"])
    for unchanged in ("bread.txt", "chess.txt"):
        assert np.array_equal(first[unchanged], second[unchanged])  # carried over, not redone
    assert not np.array_equal(first["volcano.txt"], second["volcano.txt"])

    counter.documents = counter.loads = 0
    (folder / "chess.txt").unlink()
    report = rebuild(settings, counter.get)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 1, 2)
    assert report.articles == 2
    assert counter.loads == 0, "a removal needs no model"
    third = vectors_by_article(settings.index_dir)
    assert set(third) == {"bread.txt", "volcano.txt"}
    assert all(np.array_equal(second[a], third[a]) for a in third)

    (folder / "bees.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    report = rebuild(settings, counter.get)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 0, 0, 2)
    fourth = vectors_by_article(settings.index_dir)
    assert counter.documents == len(fourth["bees.txt"])
    assert all(np.array_equal(third[a], fourth[a]) for a in third)

    # and the new article is found
    stored = open_current(settings.index_dir)
    try:
        hits = Searcher(stored, counter).search("how do bees tell each other where flowers are?")
        assert hits[0].article_id == "bees.txt"
    finally:
        stored.close()


def test_full_reembeds_everything(built):
    settings, counter = built
    chunks = manifest(settings.index_dir)["chunks"]
    report = rebuild(settings, counter.get, full=True)
    assert report.full and report.published
    assert (report.added, report.updated, report.unchanged) == (0, 3, 0)
    assert counter.documents == chunks


def test_changing_chunk_tokens_forces_a_full_rebuild(built, monkeypatch, tmp_path: Path):
    settings, counter = built
    monkeypatch.setenv("CHUNK_TOKENS", "24")
    monkeypatch.setenv("CHUNK_OVERLAP_TOKENS", "0")
    changed = IndexSettings(articles_dir=settings.articles_dir, index_dir=settings.index_dir)
    assert changed.chunk_tokens == 24
    report = rebuild(changed, counter.get)
    assert report.full and report.published
    assert (report.added, report.updated, report.unchanged) == (0, 3, 0)
    m = manifest(settings.index_dir)
    assert m["chunker"] == {"chunk_tokens": 24, "chunk_overlap_tokens": 0}
    assert counter.documents == m["chunks"] > 3  # smaller chunks, so more of them
    # and once rebuilt with the new setting, the next run is incremental again
    assert rebuild(changed, counter.get).unchanged == 3


def test_changing_the_model_forces_a_full_rebuild(built):
    settings, counter = built
    other = CountingEmbedder(counter.inner, name="someone/other-model")
    changed = settings.model_copy(update={"embedding_model": "someone/other-model"})
    report = rebuild(changed, other.get)
    assert report.full and (report.updated, report.unchanged) == (3, 0)
    assert manifest(settings.index_dir)["model"] == "someone/other-model"
    # a searcher for the old model now refuses the index instead of returning nonsense
    stored = open_current(settings.index_dir)
    try:
        with pytest.raises(IndexMismatch, match="someone/other-model"):
            Searcher(stored, counter)
    finally:
        stored.close()


def test_format_version_mismatch_is_refused_then_rebuilt(built):
    settings, counter = built
    path = store.current_version_dir(settings.index_dir) / "manifest.json"
    data = json.loads(path.read_text())
    data["format_version"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match="format version 999"):
        open_current(settings.index_dir)
    report = rebuild(settings, counter.get)  # treats it as no usable index
    assert report.published and report.added == 3
    assert open_current(settings.index_dir).manifest.format_version == store.FORMAT_VERSION


def test_concurrent_rebuild_is_refused_with_a_clear_message(built):
    settings, counter = built
    with rebuild_lock(settings.index_dir), pytest.raises(RebuildBusy, match="another rebuild"):
        rebuild(settings, counter.get, full=True)
    assert counter.loads == 0
    assert rebuild(settings, counter.get).unchanged == 3  # the lock is free again


def test_failed_publish_keeps_the_old_version_and_leaves_nothing(built, monkeypatch):
    settings, counter = built
    before = current_version_name(settings.index_dir)

    def disk_full(index, writer):
        del index, writer
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.faiss, "write_index", disk_full)
    with pytest.raises(IndexFolderError, match=r"No space left on device.*still served"):
        rebuild(settings, counter.get, full=True)
    monkeypatch.undo()

    vdir = versions_dir(settings.index_dir)
    assert current_version_name(settings.index_dir) == before
    assert [p.name for p in vdir.iterdir()] == [before], "the half-written version is gone"
    assert not (settings.index_dir / "CURRENT.tmp").exists()
    stored = open_current(settings.index_dir)
    try:
        assert Searcher(stored, counter.inner).search("sourdough starter")[0].article_id == (
            "bread.txt"
        )
    finally:
        stored.close()


def test_a_killed_rebuilds_debris_is_swept_by_the_next(built):
    settings, counter = built
    vdir = versions_dir(settings.index_dir)
    (vdir / f"{TMP_PREFIX}20990101T000000000000Z-abcdef" / "bm25").mkdir(parents=True)
    (vdir / f"{TMP_PREFIX}old-20000101T000000000000Z-abcdef").mkdir()
    (settings.index_dir / "CURRENT.tmp").write_text("half")
    report = rebuild(settings, counter.get)  # nothing changed, but the debris goes
    assert report.unchanged == 3 and not report.published
    assert not [p for p in vdir.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not (settings.index_dir / "CURRENT.tmp").exists()


def test_a_version_never_published_does_not_push_out_the_previous_one(built):
    """Killed between renaming its version into place and moving CURRENT, a rebuild leaves
    a version newer than the served one: the next rebuild removes it, and keeps the one
    served before it among the KEEP_VERSIONS."""
    settings, counter = built
    vdir = versions_dir(settings.index_dir)
    served = current_version_name(settings.index_dir)
    assert served is not None
    orphan = vdir / "20990101T000000000000Z-orphan"
    shutil.copytree(vdir / served, orphan)
    (settings.articles_dir / "extra.txt").write_text("Extra\nA new note.", encoding="utf-8")
    assert rebuild(settings, counter.get).published
    names = sorted(p.name for p in vdir.iterdir())
    assert orphan.name not in names
    assert served in names and names[-1] == current_version_name(settings.index_dir)


def test_old_versions_are_collected(built):
    settings, counter = built
    folder = settings.articles_dir
    for i in range(3):
        (folder / f"extra{i}.txt").write_text(f"Extra {i}\nNote number {i}.", encoding="utf-8")
        rebuild(settings, counter.get)
    names = sorted(p.name for p in versions_dir(settings.index_dir).iterdir())
    assert len(names) == settings.keep_versions
    assert current_version_name(settings.index_dir) == names[-1]


def test_empty_folder_builds_an_empty_index(tmp_path: Path, embedder):
    (tmp_path / "articles").mkdir()
    settings = make_settings(tmp_path, index_type="ivf")  # nothing to train IVF on
    report = rebuild(settings, lambda: embedder)
    assert report.published and (report.articles, report.chunks) == (0, 0)
    stored = open_current(settings.index_dir)
    try:
        assert stored.manifest.index_type == "flat"
        assert Searcher(stored, embedder).search("anything at all") == []
    finally:
        stored.close()
    assert not rebuild(settings, lambda: embedder).published  # and it stays that way


def _synthetic_articles(n: int) -> dict[str, str]:
    topics = [
        "harbour", "glacier", "orchard", "lantern", "parliament", "meadow", "archive",
        "engine",
    ]  # fmt: skip
    return {
        f"filler{i:03d}.txt": f"Notes on {topics[i % len(topics)]} {i}\n"
        f"This note number {i} is about the {topics[i % len(topics)]} and the "
        f"{topics[(i * 3 + 1) % len(topics)]}. It says little else."
        for i in range(n)
    }


@pytest.fixture(scope="module")
def synthetic_once(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """The three articles among 60 fillers, indexed once (flat)."""
    base = tmp_path_factory.mktemp("synthetic")
    write_articles(base / "articles", ARTICLES | _synthetic_articles(60))
    rebuild(make_settings(base, index_type="flat"), lambda: embedder)
    return base


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_each_index_type_searches(
    synthetic_once: Path, tmp_path: Path, embedder, monkeypatch, kind: str
):
    shutil.copytree(synthetic_once / "articles", tmp_path / "articles")
    shutil.copytree(synthetic_once / "index", tmp_path / "index")
    monkeypatch.setenv("INDEX_TYPE", kind)
    settings = make_settings(tmp_path)
    assert settings.index_type == kind
    counter = CountingEmbedder(embedder)
    rebuild(settings, counter.get)  # re-laid out from the stored vectors
    assert counter.documents == 0
    stored = open_current(settings.index_dir, ann_config(settings))
    try:
        assert stored.manifest.index_type == kind
        assert stored.dense.ntotal == stored.size
        searcher = Searcher(stored, embedder)
        for mode in ("dense", "hybrid"):
            hits = searcher.search("Why does sourdough taste sour?", k=3, mode=mode)
            assert hits[0].article_id == "bread.txt", (kind, mode)
        hits = searcher.search("lava eruption and evacuation", k=1, mode="dense")
        assert hits[0].article_id == "volcano.txt"
    finally:
        stored.close()


def test_auto_picks_flat_below_the_threshold_and_hnsw_above(built, monkeypatch):
    settings, counter = built
    chunks = manifest(settings.index_dir)["chunks"]
    assert manifest(settings.index_dir)["index_type"] == "flat"  # default threshold 50,000
    first = vectors_by_article(settings.index_dir)

    monkeypatch.setenv("ANN_THRESHOLD", str(chunks))
    lowered = IndexSettings(articles_dir=settings.articles_dir, index_dir=settings.index_dir)
    report = rebuild(lowered, counter.get)  # no article changed, but the layout must
    assert report.published and report.unchanged == 3 and counter.documents == 0
    assert manifest(settings.index_dir)["index_type"] == AUTO_LARGE  # the measured choice
    second = vectors_by_article(settings.index_dir)
    assert all(np.array_equal(first[a], second[a]) for a in first)

    monkeypatch.setenv("ANN_THRESHOLD", str(chunks + 1))
    raised = IndexSettings(articles_dir=settings.articles_dir, index_dir=settings.index_dir)
    assert rebuild(raised, counter.get).published
    assert manifest(settings.index_dir)["index_type"] == "flat"
    assert ann_config(raised).resolve(chunks + 1) == AUTO_LARGE


def test_changing_index_type_republishes_without_embedding(built):
    settings, counter = built
    report = rebuild(settings.model_copy(update={"index_type": "hnsw"}), counter.get)
    assert report.published and counter.documents == 0
    assert manifest(settings.index_dir)["index_type"] == "hnsw"


def test_live_index_follows_new_versions_without_restart(built):
    settings, counter = built
    live = LiveIndex(settings.index_dir, lambda: counter.inner, poll_seconds=3600)
    old = live.get()
    first_version = live.version
    assert old.search("honeybee waggle dance", k=1)[0].article_id != "bees.txt"

    (settings.articles_dir / "bees.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    report = rebuild(settings, counter.get)
    assert report.published

    assert live.get() is old, "within poll_seconds the current searcher is reused"
    new = live.get(force_check=True)
    assert new is not old and live.version == report.version != first_version
    assert new.search("honeybee waggle dance", k=1)[0].article_id == "bees.txt"
    # a search that still holds the old searcher keeps working on the old version
    assert old.search("sourdough starter", k=1)[0].article_id == "bread.txt"
    assert live.get(force_check=True) is new  # no new version: nothing reopened

    eager = LiveIndex(settings.index_dir, lambda: counter.inner, poll_seconds=0)
    assert eager.get().version == report.version
