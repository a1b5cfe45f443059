"""Passage shaping for news: evidence across a chunk boundary, syndicated copies, offsets."""

from __future__ import annotations

import itertools
from itertools import pairwise
from pathlib import Path

import pytest

from index.rebuild import rebuild
from index.search import MODES, Searcher, _connected_units, _runs_on
from index.sentences import pack_spans, sentence_spans, unpack_spans, window
from index.settings import IndexSettings
from index.store import open_current

FERRY = """Ferry operator halts night crossings after engine fire

PORT ELLIS, May 2 (Harbour Wire) - The island ferry operator Tidewater Lines suspended all \
night crossings on Friday after an engine fire on one of its three vessels.

The fire broke out in the engine room of the Morning Gull about forty minutes after it left \
Port Ellis with 212 passengers on board. The crew put it out within a quarter of an hour, \
and nobody was hurt.

Chief executive Marit Solheim said the suspension would last until every ship had been \
inspected by the maritime safety board. She expected the checks to take at least a \
fortnight, because the board has only two engine inspectors for the whole coast.

Islanders who commute to the mainland said the loss of the late boat would cost them \
shifts. The harbour council asked the operator to lay on extra morning sailings instead.
"""

STORY = """PORT ELLIS, June 9 (Harbour Wire) - Fishermen in Port Ellis voted on Monday to stop \
landing cod at the town's auction hall after buyers cut the price they pay by a third.

The boycott was called by the Port Ellis Fishermen's Cooperative, which speaks for about \
ninety boats. Its chair, Arvid Lunde, said members would sell their catch in the northern \
market town of Skarvik until the auction restored the old price.

The auction hall's manager, Petra Holm, said buyers had cut prices because restaurants \
were ordering less fish. She said the hall could not set prices itself.
"""

COPY_A = "Cod boycott at Port Ellis auction\n\n" + STORY
COPY_B = (
    "Port Ellis fishermen shun auction over cod price\n\n"
    "Coastline Daily | Business | Wire copy\n"
    "Sign up for the Coastline Daily morning briefing, free every weekday.\n\n"
    + STORY
    + "\nShare this story: Facebook | Email\n"
)


@pytest.fixture(scope="module")
def news_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    base = tmp_path_factory.mktemp("news")
    folder = base / "articles"
    folder.mkdir()
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    (folder / "cod_a.txt").write_text(COPY_A, encoding="utf-8")
    (folder / "cod_b.txt").write_text(COPY_B, encoding="utf-8")
    # small chunks without overlap: a boundary falls between two sentences of one fact
    settings = IndexSettings(
        articles_dir=folder, index_dir=base / "index", chunk_tokens=48, chunk_overlap_tokens=0
    )
    rebuild(settings, lambda: embedder)
    return settings.index_dir


@pytest.fixture(scope="module")
def stored(news_index: Path):
    s = open_current(news_index)
    yield s
    s.close()


def _straddling_pair(stored) -> tuple[str, str]:
    """The last sentence of one ferry chunk and the first of the next, found in the index."""
    article = next(a for a in stored.articles() if a.id == "ferry.txt")
    rows = stored.chunk_rows(range(article.first_chunk, article.first_chunk + article.n_chunks))
    chunks = [rows[r] for r in sorted(rows)]
    for first, then in pairwise(chunks):
        if "Chief executive Marit Solheim" in then["text"][:40]:
            return first["text"].rsplit("\n\n", 1)[-1].strip(), then["text"].split(". ")[0]
    raise AssertionError("the chunker put no boundary before the Solheim paragraph")


def test_evidence_across_a_chunk_boundary_comes_back_whole(stored, embedder) -> None:
    before, after = _straddling_pair(stored)
    question = "How long will the ferry inspections take and why so long?"
    shaped = Searcher(stored, embedder).search(question, k=3)
    chunks = Searcher(stored, embedder, passages="chunks").search(question, k=3)
    evidence = ("She expected the checks to take at least a fortnight", "two engine inspectors")
    assert any(all(e in h.text for e in evidence) for h in shaped[:1])
    # the widened passage reaches back over the boundary: the sentence before it rides along
    assert before.split()[-1] in shaped[0].text and after in shaped[0].text
    assert not any(before in h.text and after in h.text for h in chunks)


def test_hits_are_verbatim_slices_and_never_overlap(stored, embedder) -> None:
    searcher = Searcher(stored, embedder)
    for mode in MODES:
        for question in ("Who chairs the fishermen's cooperative?", "was anyone hurt in the fire"):
            hits = searcher.search(question, k=5, mode=mode)
            assert hits
            for h in hits:
                assert stored.article_text(h.article_id)[h.start : h.end] == h.text
            for a in hits:
                for b in hits:
                    if a is not b and a.article_id == b.article_id:
                        assert a.end <= b.start or b.end <= a.start


def test_syndicated_copies_are_collapsed_to_one_hit(stored, embedder) -> None:
    question = "Where will the fishermen sell their cod during the boycott?"
    shaped = Searcher(stored, embedder).search(question, k=5)
    chunks = Searcher(stored, embedder, passages="chunks").search(question, k=5)
    assert {h.article_id for h in chunks if "Skarvik" in h.text} == {"cod_a.txt", "cod_b.txt"}
    assert "Skarvik" in shaped[0].text
    other = ({"cod_a.txt", "cod_b.txt"} - {shaped[0].article_id}).pop()
    assert shaped[0].also_in == (other,)
    assert shaped[0].to_json()["also_in"] == [other]
    # every sentence of the story comes back once, whichever copy holds it
    for sentence in " ".join(STORY.split()).split(". "):
        assert sum(sentence in " ".join(h.text.split()) for h in shaped) == 1
    assert all(h.also_in == () for h in chunks)


def test_a_passage_never_reaches_across_text_between_chunks() -> None:
    text = "One two. Three four.\n\nSupport us today!\n\nFive six. Seven."
    first = {"article_id": "a", "start": 0, "end": 20}
    after_pitch = {"article_id": "a", "start": 41, "end": len(text)}
    touching = {"article_id": "a", "start": 22, "end": 39}
    overlapping = {"article_id": "a", "start": 9, "end": 39}
    assert not _runs_on(first, after_pitch, text)  # boilerplate lies between them
    assert _runs_on(first, touching, text)  # only white space between
    assert _runs_on(first, overlapping, text)
    assert not _runs_on(first, {**touching, "article_id": "b"}, text)
    assert not _runs_on(None, first, text)


def test_sentences_stored_at_build_give_the_units_splitting_again_gives(stored) -> None:
    shapes = stored.shaping([a.id for a in stored.articles()])
    assert set(shapes) == {"ferry.txt", "cod_a.txt", "cod_b.txt"}
    rows = stored.chunk_rows(range(stored.size))
    assert len(rows) > 6
    for row, m in rows.items():
        text = stored.article_text(m["article_id"])
        spans = shapes[m["article_id"]].sentences
        assert _connected_units(row, m, rows, text, spans) == _connected_units(row, m, rows, text)


@pytest.mark.parametrize(
    "name",
    [
        "news/harbour-bridge-reopens.md",
        "news/library-opening-hours.txt",
        "docs/how-citations-work.md",
    ],
)
def test_a_window_of_stored_sentences_is_the_window_split_alone(name: str) -> None:
    text = (Path(__file__).parents[2] / "articles" / name).read_text(encoding="utf-8")
    spans = unpack_spans(pack_spans(sentence_spans(text)))
    cuts = [0, *(i + 2 for i in range(len(text)) if text.startswith("\n\n", i)), len(text)]
    for a, b in itertools.combinations(cuts, 2):  # windows of whole paragraphs, like chunks
        assert window(text, spans, a, b) == sentence_spans(text, a, b)
    whole = [(s, e) for s, e in spans.tolist()]
    for s, e in whole:  # and cut inside a sentence, as a too-long sentence is
        middle = (s + e) // 2
        assert window(text, spans, middle, e) == sentence_spans(text, middle, e)
