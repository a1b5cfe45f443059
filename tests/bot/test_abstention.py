"""Saying "the articles don't say": easy off-topic questions and hard ones that share names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.abstention import FEATURES, EvidenceModel, features, shipped_model
from bot.service import QAService
from bot.settings import Settings

HARBOUR = """\
Port Ellery harbour reopens after two-year rebuild

The harbour at Port Ellery reopened on Saturday after a rebuild that took two years and cost
14 million pounds, the town council said.

The new sea wall is 400 metres long and was designed to withstand storms like the one that
flooded the fish market in the winter of 2021. Harbour master Aileen Corrow said the wall
was "the first thing the fleet has asked for in thirty years".

Forty-two fishing boats are registered at Port Ellery. The council expects the reopened
harbour to bring back the summer ferry to the Skerry Isles, which stopped running when the
old pier was closed.
"""

CHESS = """\
Leddington chess club wins county title

The Leddington chess club won the county league for the first time since 1987, beating
Marsh End by four and a half points to three and a half in the final round on Tuesday.

Club captain Ravi Nandakumar said the win came from the juniors: three of the eight players
in the final team are under sixteen. The club meets every Thursday evening in the library
annexe and has 61 members.
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, embedder) -> QAService:
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path_factory.mktemp("abstention")
    (root / "articles").mkdir()
    (root / "articles" / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    (root / "articles" / "chess.txt").write_text(CHESS, encoding="utf-8")
    rebuild(
        IndexSettings(articles_dir=root / "articles", index_dir=root / "index"), lambda: embedder
    )
    return QAService(Settings(index_dir=root / "index"), embedder=embedder)


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("How long is the new sea wall at Port Ellery?", "harbour.txt"),
        ("How much did the Port Ellery harbour rebuild cost?", "harbour.txt"),
        ("Who is the harbour master at Port Ellery?", "harbour.txt"),
        ("When did Leddington last win the county league?", "chess.txt"),
        ("How many members does the Leddington chess club have?", "chess.txt"),
    ],
)
def test_answers_what_the_articles_say(service: QAService, question: str, article: str) -> None:
    answer = service.answer(question)
    assert answer.found, answer.text
    assert answer.citations and answer.citations[0].source.endswith(article)


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Peru?",
        "How do I reset my router password?",
        "Who wrote the novel Middlemarch?",
        "What is the boiling point of tungsten?",
    ],
)
def test_declines_other_topics(service: QAService, question: str) -> None:
    assert service.answer(question).found is False


@pytest.mark.parametrize(
    "question",
    [
        # The names are in the articles; the facts asked for are not.
        "What is the name of Aileen Corrow's daughter?",
        "Which architect designed the Leddington library annexe?",
        "How many passengers did the Skerry Isles ferry carry in 2019?",
    ],
)
def test_declines_unknown_facts_about_known_names(service: QAService, question: str) -> None:
    answer = service.answer(question)
    assert answer.found is False, answer.text


def test_evidence_features_are_bounded(service: QAService) -> None:
    searcher = service.live.get()
    q = "Who is the harbour master at Port Ellery?"
    hits = searcher.search(q, 5)
    ranked = service.extractive.rank_sentences(q, hits, searcher.embedder)
    values = features(q, hits, ranked, searcher.term_weights(q))
    assert set(values) == set(FEATURES)
    for name, value in values.items():
        assert -1.0 <= value <= 1.0 + 1e-9, name
    off = "What is the name of Aileen Corrow's daughter?"
    off_hits = searcher.search(off, 5)
    off_ranked = service.extractive.rank_sentences(off, off_hits, searcher.embedder)
    off_values = features(off, off_hits, off_ranked, searcher.term_weights(off))
    key = "coverage_best_sentence_titled"
    assert values[key] > off_values[key]
    assert values["rarest_missing"] < off_values["rarest_missing"]


def test_shipped_model_rewards_evidence() -> None:
    model = shipped_model()
    assert set(model.features) <= set(FEATURES)
    weak = dict.fromkeys(FEATURES, 0.0) | {"rarest_missing": 1.0}
    strong = dict.fromkeys(FEATURES, 1.0) | {"rarest_missing": 0.0}
    strong["cosine_x_coverage"] = 1.0
    assert model.probability(weak) < 0.05 < 0.95 < model.probability(strong)


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    data = shipped_model().to_json() | {"features": ["no_such_signal"], "coef": [1.0]}
    with pytest.raises(ValueError, match="features"):
        EvidenceModel.from_json(data)


def test_a_sentence_is_read_under_its_articles_title() -> None:
    from dataclasses import dataclass

    from index.models import Hit

    @dataclass(frozen=True)
    class Ranked:
        text: str
        hit_index: int
        dense: float = 0.6
        typed: float = 1.0

    sentence = "The strike began at 6am on Monday 3 March, the union said."
    headed = Hit(1, 1.0, "a#0", "a", "Dockworkers walk out at Harrowgate port", "a", 0, 60,
                 sentence, dense_score=0.5)  # fmt: skip
    untitled = Hit(1, 1.0, "b#0", "b", "Port news", "b", 0, 60, sentence, dense_score=0.5)
    question = "When did the Harrowgate strike start?"
    idf = {"harrowg": 3.0, "strike": 2.0, "start": 1.0}
    under_title = features(question, [headed], [Ranked(sentence, 0)], idf)
    without = features(question, [untitled], [Ranked(sentence, 0)], idf)
    assert under_title["coverage_best_sentence_titled"] == pytest.approx(5 / 6)
    assert without["coverage_best_sentence_titled"] == pytest.approx(2 / 6)
    # a sentence is never read under another article's title
    two = features(question, [untitled, headed], [Ranked(sentence, 0)], idf)
    assert two["coverage_best_sentence_titled"] == pytest.approx(2 / 6)
