"""Syndicated-copy detection: the stored word filters prove "no copy" and never deny one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import copies
from index.search import Searcher
from index.store import current_version_dir, open_current

WIRE = (
    "GRANVIK, March 3 (Northern Wire) - The regional water board will ration tap water in "
    "Granvik and two neighbouring villages from Monday, after the driest winter in forty "
    "years left the Lindvatn reservoir at a fifth of its usual level. Households will get "
    "water between six and ten in the morning and again in the evening.\n\n"
    "Board chairwoman Ingrid Aasen said tankers would supply the care home and the school, "
    "and that farmers could apply for exemptions for livestock."
)
REPRINT = (
    "Water rationing for Granvik from Monday\n\nValley Courier | Local | Agency copy\n\n"
    + WIRE.replace("\n\n", "\n\n\n")  # other layout, same story
    + "\n\nShare: Email | Print\nMore from the Valley Courier: school fair, council budget."
)
OTHER = (
    "The Granvik chess club won the county cup on Saturday. Club captain Ola Berg said the "
    "water board's sponsorship had paid for the trip, and that the team would defend the "
    "title next winter in the neighbouring villages' hall."
)

_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzåäöé'-", min_size=1, max_size=12)


@given(st.lists(_words, min_size=1, max_size=400), st.integers(0, 399), st.integers(4, 120))
@settings(max_examples=150, deadline=None)
def test_a_word_filter_never_denies_a_passage_of_its_own_text(words, at, length) -> None:
    text = " ".join(words)
    part = " ".join(words[at % len(words) : at % len(words) + length])
    passage = copies.Passage(part)
    assert passage.may_be_in(copies.word_filter(text))
    assert passage.may_be_in_words(set(copies.words(text)))
    assert passage.is_in(copies.shingles(text)) or not passage.shingles


def test_the_filter_rules_out_another_story_on_the_same_topic() -> None:
    passage = copies.Passage(WIRE.split("\n\n")[1])
    assert passage.may_be_in(copies.word_filter(REPRINT))
    assert not passage.may_be_in(copies.word_filter(OTHER))
    assert not passage.may_be_in_words(set(copies.words(OTHER)))
    assert len(copies.word_filter(OTHER)) * 8 >= copies.FILTER_BITS_PER_WORD * len(
        set(copies.words(OTHER))
    )


def test_copy_of_is_the_same_with_filters_and_with_text_alone() -> None:
    texts = {"wire": WIRE, "reprint": REPRINT, "other": OTHER}
    filters = {k: copies.word_filter(v) for k, v in texts.items()}
    for aid, text in texts.items():
        for passage in text.split("\n\n"):
            with_filters = copies.copy_of(
                passage,
                aid,
                list(texts),
                filters.get,
                lambda a: set(copies.words(texts[a])),
                lambda a: copies.shingles(texts[a]),
            )
            text_alone = copies.copy_of(
                passage,
                aid,
                list(texts),
                lambda a: None,
                lambda a: set(copies.words(texts[a])),
                lambda a: copies.shingles(texts[a]),
            )
            assert with_filters == text_alone
    lead = WIRE.split("\n\n")[0]
    assert copies.copy_of(lead, "wire", ["other", "reprint"], filters.get, set, set) is None
    found = copies.copy_of(
        lead,
        "wire",
        ["other", "reprint"],
        filters.get,
        lambda a: set(copies.words(texts[a])),
        lambda a: copies.shingles(texts[a]),
    )
    assert found == 1


@pytest.fixture(scope="module")
def wire_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    base = tmp_path_factory.mktemp("wire")
    folder = base / "articles"
    folder.mkdir()
    for name, text in (("wire.txt", WIRE), ("reprint.txt", REPRINT), ("chess.txt", OTHER)):
        (folder / name).write_text(text, encoding="utf-8")
    settings_ = IndexSettings(articles_dir=folder, index_dir=base / "index")
    rebuild(settings_, lambda: embedder)
    return settings_.index_dir


def test_an_index_keeps_a_filter_per_article_and_old_ones_still_collapse_copies(
    wire_index: Path, tmp_path: Path, embedder
) -> None:
    question = "When will Granvik ration tap water?"
    stored = open_current(wire_index)
    try:
        ids = [a.id for a in stored.articles()]
        kept = {k: v.word_filter for k, v in stored.shaping(ids).items()}
        assert set(kept) == set(ids)
        assert kept["chess.txt"] == copies.word_filter(stored.article_text("chess.txt"))
        with_filters = Searcher(stored, embedder).search(question, k=3)
    finally:
        stored.close()
    assert with_filters[0].also_in, "the reprint is folded into the wire story's hit"

    # a version written before filters were kept: no table, the same answers from the text
    import shutil

    old = tmp_path / "old"
    shutil.copytree(wire_index, old)
    db = current_version_dir(old) / "meta.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE shaping")
    conn.close()
    stored = open_current(old, checksums=False)
    try:
        assert stored.shaping(ids) == {}
        assert Searcher(stored, embedder).search(question, k=3) == with_filters
    finally:
        stored.close()


def test_an_incremental_rebuild_on_a_version_without_filters_adds_them_for_new_articles(
    wire_index: Path, tmp_path: Path, embedder
) -> None:
    import json
    import shutil

    from index import store
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path / "index"
    shutil.copytree(wire_index, root)
    version = current_version_dir(root)
    with sqlite3.connect(version / "meta.sqlite") as conn:
        conn.execute("DROP TABLE shaping")
    conn.close()
    data = json.loads((version / "manifest.json").read_text())  # re-signed, as if old
    data["files"]["meta.sqlite"] = {
        "size": (version / "meta.sqlite").stat().st_size,
        "sha256": store.file_digest(version / "meta.sqlite"),
    }
    data.pop("checksum", None)
    data["checksum"] = store._manifest_digest(data)
    (version / "manifest.json").write_text(json.dumps(data, indent=2))

    folder = tmp_path / "articles"
    shutil.copytree(wire_index.parent / "articles", folder)
    (folder / "chess.txt").write_text(OTHER + " The final was played in Granvik.", "utf-8")
    report = rebuild(IndexSettings(articles_dir=folder, index_dir=root), lambda: embedder)
    assert report.published and report.incremental and report.updated == 1
    stored = open_current(root, checksums=True)
    try:
        assert set(stored.shaping(["wire.txt", "reprint.txt", "chess.txt"])) == {"chess.txt"}
        hits = Searcher(stored, embedder).search("When will Granvik ration tap water?", k=3)
        assert hits[0].also_in
    finally:
        stored.close()


@given(st.lists(st.integers(0, (1 << 16) - 1), max_size=300), st.integers(1, 1 << 16))
@settings(max_examples=100, deadline=None)
def test_shingles_packed_in_one_integer_are_the_distinct_shingles(ids, spread) -> None:
    import numpy as np

    ids = np.asarray([i % spread for i in ids], dtype=np.int64)
    packed = {tuple(r) for r in copies._distinct_rows(ids).tolist()}
    assert packed == {tuple(r) for r in copies._distinct_rows_big(ids).tolist()}
    assert len(packed) == len(copies._distinct_rows(ids))
    text = " ".join(f"w{i}" for i in ids.tolist())
    assert copies.Passage(text).size == len(copies.shingles(text))


def test_a_damaged_shaping_row_is_shaped_from_the_text(
    wire_index: Path, tmp_path: Path, embedder
) -> None:
    import shutil

    root = tmp_path / "index"
    shutil.copytree(wire_index, root)
    question = "When will Granvik ration tap water?"
    stored = open_current(wire_index)
    try:
        expected = Searcher(stored, embedder).search(question, k=3)
    finally:
        stored.close()
    with sqlite3.connect(current_version_dir(root) / "meta.sqlite") as conn:
        conn.execute("UPDATE shaping SET sentences = x'0102030405'")  # not int32 pairs
    conn.close()
    stored = open_current(root, checksums=False)
    try:
        assert stored.shaping(["wire.txt", "reprint.txt"]) == {}
        assert Searcher(stored, embedder).search(question, k=3) == expected
    finally:
        stored.close()
