"""What answers say: small talk, the speaker's own words, whole sentences, one number per article.

The seed canary runs the CLI as a user would; the rules underneath (small talk, speaker
attribution, clause trimming, numbering) are checked on text written for these tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chitchat import REPLIES, small_talk, without_greeting
from bot.citations import number_by_article
from bot.models import Answer, Citation
from bot.quoting import ELLIPSIS, excerpt
from bot.service import QAService
from bot.settings import Settings
from bot.speakers import speech_question, speech_score, speeches
from index.sentences import sentence_spans
from index.store import open_current

CANARY = "what did Obama say to Putin?"

SUMMIT = """Moreno told Tanabe to "stop the provocations", Kestrian ministry says
Kestrian President Luis Moreno told Prime Minister Aiko Tanabe of Ostland to "stop the \
provocations" during a tense meeting at the Valmont summit, the Kestrian foreign ministry has said.
Ostland's government said Ms Tanabe had given "a calm and firm answer".
Mr Moreno described the meeting himself at a press conference on Friday.
"I looked her in the eye and told her that if one more of our patrol boats is rammed, we will \
close our ports to every Ostland vessel and take the whole matter to the international court, \
because our patience has limits and those limits have now been reached," Mr Moreno said.
He insisted that Kestria still wanted a negotiated settlement.
"There were frank exchanges. Nobody left the room happy," said Pia Lund, a Kestrian diplomat.
"We will keep talking."
"""


def run_bot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=180,
    )


def stored_text(index_dir: Path, article_id: str) -> str:
    stored = open_current(index_dir)
    try:
        text = stored.article_text(article_id)
    finally:
        stored.close()
    assert text is not None
    return text


# ------------------------------------------------------------------------ the seed, by CLI


def test_canary_quotes_obamas_own_words_once(seed_index: Path) -> None:
    proc = run_bot("ask", "--index", str(seed_index), "--json", CANARY)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["found"] is True
    assert "cut it out" in data["answer"] and "serious consequences" in data["answer"]
    assert {c["n"] for c in data["citations"]} == {1}
    assert set(re.findall(r"\[(\d+)\]", data["answer"])) == {"1"}
    for c in data["citations"]:
        text = stored_text(seed_index, c["article_id"])
        assert text[c["start"] : c["end"]] == c["quote"]
    # Every word of the answer (markers and ellipses aside) is quoted from the seed.
    quoted = re.sub(r"\s*\[\d+\]", "", data["answer"]).replace(ELLIPSIS, " ")
    joined = " ".join(" ".join(c["quote"].split()) for c in data["citations"])
    for piece in quoted.split("  "):
        assert " ".join(piece.split()) in joined
    # Obama's own sentence, not the Kremlin's account of the meeting.
    assert "the Kremlin has said" not in data["answer"]


@pytest.mark.parametrize("message", ["@everyone hi", "hello", "thanks!"])
def test_small_talk_over_the_seed_gets_a_help_reply(seed_index: Path, message: str) -> None:
    proc = run_bot("ask", "--index", str(seed_index), "--json", message)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["found"] is False
    assert data["citations"] == []
    assert data["answer"] in REPLIES.values()
    assert "journalism" not in data["answer"] and "[1]" not in data["answer"]


def test_greeting_before_a_question_still_answers_it(seed_index: Path, embedder) -> None:
    service = QAService(Settings(index_dir=seed_index), embedder=embedder)
    answer = service.answer("hi, " + CANARY)
    assert answer.found and "cut it out" in answer.text
    assert answer.question == "hi, " + CANARY
    off_topic = service.answer("What is the capital of Peru?")
    assert off_topic.found is False and off_topic.answerer != "chitchat"


# ------------------------------------------------------------------------ a written article


@pytest.fixture(scope="module")
def summit_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path_factory.mktemp("summit")
    (root / "articles").mkdir()
    (root / "articles" / "summit.txt").write_text(SUMMIT, encoding="utf-8")
    rebuild(
        IndexSettings(articles_dir=root / "articles", index_dir=root / "index"), lambda: embedder
    )
    return root / "index"


def test_speaker_own_words_beat_anothers_account(summit_index: Path, embedder) -> None:
    service = QAService(Settings(index_dir=summit_index), embedder=embedder)
    answer = service.answer("What did Moreno say to Tanabe?")
    assert answer.found
    assert "close our ports" in answer.text and "international court" in answer.text
    assert "foreign ministry has said" not in answer.text


def test_who_said_reaches_the_attribution(summit_index: Path, embedder) -> None:
    service = QAService(Settings(index_dir=summit_index), embedder=embedder)
    answer = service.answer("Who said nobody left the room happy?")
    assert answer.found and "Pia Lund" in answer.text


# ------------------------------------------------------------------------ small talk rules


@pytest.mark.parametrize(
    "message",
    ["hi", "Hello!", "thanks!", "@everyone hi", "good morning", "who are you?",
     "what can you do?", "<@123456> hey there", "thank you so much 🙏", "ok bye", "👋"],
)  # fmt: skip
def test_small_talk_is_recognised(message: str) -> None:
    talk = small_talk(message)
    assert talk is not None and talk.reply in REPLIES.values()


@pytest.mark.parametrize(
    "message",
    ["hi, what did Obama say?", "thanks, who said that?", "Hello Kitty maker?",
     "what is up with the port strike?", "who are you voting for, Ms Ferreira asked",
     "What can you do about flooding?", "When did the summit start?"],
)  # fmt: skip
def test_real_questions_are_not_small_talk(message: str) -> None:
    assert small_talk(message) is None


def test_a_leading_greeting_is_dropped_only_before_a_question() -> None:
    assert without_greeting("hi, what did Obama say?") == "what did Obama say?"
    assert without_greeting("@everyone hello what did Obama say?") == "what did Obama say?"
    assert without_greeting("Hello Kitty maker?") == "Hello Kitty maker?"


# ------------------------------------------------------------------------ speakers


def test_speech_questions_name_the_speaker() -> None:
    q = speech_question("What did Barack Obama tell Putin?")
    assert q is not None and q.kind == "say" and "obama" in q.speaker
    assert speech_question("What was Tanabe's response?").speaker == frozenset({"tanabe"})
    assert speech_question("Who warned of empty shelves?").kind == "who"
    assert speech_question("When was the summit held?") is None


def test_attribution_of_each_sentence() -> None:
    spans = sentence_spans(SUMMIT)
    said = dict(zip([SUMMIT[s:e] for s, e in spans], speeches(SUMMIT, spans), strict=True))
    by_start = {text[:12]: speech for text, speech in said.items()}
    q = speech_question("What did Moreno say?")
    assert q is not None
    account = next(t for t in said if t.startswith("Kestrian President"))
    assert said[account].speaker == "the Kestrian foreign ministry"
    assert speech_score(q, said[account], account) == -1.0  # someone else's account of him
    own = next(t for t in said if t.startswith('"I looked'))
    assert speech_score(q, said[own], own) == 1.0
    pronoun = next(t for t in said if t.startswith("He insisted"))
    assert said[pronoun].speaker == "Mr Moreno" and said[pronoun].how == "continued"
    assert by_start['"We will kee'].speaker == "Pia Lund"  # quote paragraph continues


# ------------------------------------------------------------------------ quoting


LONG = (
    "Officials in the coastal province, who had spent most of the week arguing about the "
    "budget for the new sea wall, finally agreed on Friday that the wall would be finished "
    'by 2031, and the governor said "we will not let the sea take one more home", although '
    "several engineers warned that the money set aside would cover barely half of the work "
    "that the original plans had called for."
)


def test_a_long_answering_sentence_is_quoted_whole_under_the_char_cap() -> None:
    part = excerpt(LONG, ["wall", "finished"], max_words=20, max_chars=600)
    assert (part.start, part.end) == (0, len(LONG))
    assert not part.cut_before and not part.cut_after


def test_past_the_char_cap_the_answering_clause_is_kept() -> None:
    part = excerpt(LONG, ["wall", "finished", "2031"], max_words=25, max_chars=200)
    shown = part.display(LONG)
    assert "2031" in shown and shown.startswith(ELLIPSIS) and shown.endswith(ELLIPSIS)
    quote = LONG[part.start : part.end]
    assert quote.count('"') % 2 == 0  # never cut inside the quotation
    assert len(quote.split()) <= 25 and len(quote) <= 200


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["alpha", "beta,", "gamma;", '"delta', 'echo"', "and", "fox", "wall"]),
        min_size=1,
        max_size=80,
    ),
    max_words=st.integers(3, 30),
    max_chars=st.integers(20, 300),
)
def test_excerpts_are_whole_words_within_caps(
    words: list[str], max_words: int, max_chars: int
) -> None:
    sentence = " ".join(words)
    part = excerpt(sentence, ["wall", "fox"], max_words=max_words, max_chars=max_chars)
    quote = sentence[part.start : part.end]
    assert quote and quote == quote.strip()
    assert part.start == 0 or sentence[part.start - 1] in " ,;"
    assert part.end == len(sentence) or sentence[part.end] in " ,;"
    if part.cut_before or part.cut_after:
        assert len(quote) <= max_chars or len(quote.split()) == 1


# ------------------------------------------------------------------------ numbering


def citation(n: int, article: str, start: int) -> Citation:
    return Citation(n, article, article.title(), article, f"{article}#0", start, start + 5,
                    "x" * 5, 0.5)  # fmt: skip


def test_one_number_per_article() -> None:
    answer = Answer(
        "q",
        "First [1] second [2] third [3]. Both [2][3].",
        found=True,
        citations=[citation(1, "b", 40), citation(2, "a", 0), citation(3, "b", 10)],
    )
    out = number_by_article(answer)
    assert out.text == "First [1] second [2] third [1]. Both [1][2]."
    assert [(c.n, c.article_id, c.start) for c in out.citations] == [
        (1, "b", 40),
        (1, "b", 10),
        (2, "a", 0),
    ]


def test_numbering_leaves_text_without_markers_and_drops_repeats() -> None:
    answer = Answer(
        "q",
        "The articles don't say.",
        found=False,
        citations=[citation(1, "a", 0), citation(2, "a", 0), citation(3, "c", 9)],
    )
    out = number_by_article(answer)
    assert out.text == answer.text
    assert [(c.n, c.article_id) for c in out.citations] == [(1, "a"), (2, "c")]
