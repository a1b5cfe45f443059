"""Clean units at ingest: wrapped lines joined, Markdown structure kept out of answers,
glued sentences split, and boilerplate kept out of chunks without touching the stored text.

Fixtures are written here, in the shapes real files have: a hard-wrapped plain-text post, a
Markdown README, a news dump with a donation pitch glued to the story (as in the seed).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.articles import load_file
from index.boilerplate import detect, mark_boilerplate, repeated_blocks
from index.chunking import ChunkerConfig, chunk_article, embedding_inputs
from index.models import Article
from index.rebuild import rebuild
from index.sentences import answer_spans, sentence_spans, sentences
from index.settings import IndexSettings

REPO = Path(__file__).resolve().parents[2]

WRAPPED_TXT = """\
Notes from the allotment committee meeting

The committee met in the village hall on Tuesday evening to discuss the
state of the shared plots after the wet spring.
After a long debate about the drainage ditch along the northern fence, the
members agreed that the council would pay for a contractor to clear it
before the end of June, provided that the plot holders repaired the gate.
Several members asked about the compost bays.

Things to bring next time:
- The python-mode trick of autoindenting a line with <tab> is neat and
  saves a lot of typing when the lines are long.
- A copy of the tenancy agreement, signed by every plot holder on the
  eastern side.
"""

THREE_LINE_SENTENCE = (
    "After a long debate about the drainage ditch along the northern fence, the\n"
    "members agreed that the council would pay for a contractor to clear it\n"
    "before the end of June, provided that the plot holders repaired the gate."
)

MARKDOWN = """\
---
title: How this bot cites its sources
---
# How this bot cites its sources

Every answer quotes sentences from the indexed articles.

## Numbered markers

Each quote is followed by a number in square brackets. The number points at the
source list under the answer, which names the article and links to it.

Setup notes
-----------

```sh
pip install article-qa-bot
```

| command | what it does |
|---|---|
| ask | answers a question |
"""

PITCH = (
    "Your support helps us to tell the story\n"
    "At such a critical moment, we need reporters on the ground. Your donation allows us to "
    "keep sending journalists to speak to both sides of the story.\n"
    "We believe quality journalism should be available to everyone, paid for by those who can "
    "afford it.\n"
    "Your support makes all the difference."
)
STORY = (
    'The harbour master said on Friday that the new breakwater had "held up far better than '
    'anyone expected" during the storm.\n'
    "Repairs to the ferry ramp will take two weeks, the port authority said.\n"
    "Reuters contributed to this report.\n"
    "Join our commenting forum\n"
    "Comments"
)


def _article(text: str, title: str = "T", path: str = "a.txt", url: str | None = None):
    return Article(id=path, title=title, text=text, source=path, path=path, url=url)


def _texts(text: str, spans) -> list[str]:
    return [text[s:e] for s, e in spans]


def test_a_sentence_hard_wrapped_over_three_lines_is_one_sentence(tmp_path: Path):
    (tmp_path / "notes.txt").write_text(WRAPPED_TXT, encoding="utf-8")
    [article], _ = load_file(tmp_path / "notes.txt", tmp_path)
    quoted = _texts(article.text, answer_spans(article.text))
    assert THREE_LINE_SENTENCE in quoted
    assert "Several members asked about the compost bays." in quoted
    # and the line break inside it is no boundary for sentence_spans either
    assert THREE_LINE_SENTENCE in _texts(article.text, sentence_spans(article.text))


def test_a_passage_read_in_its_article_gets_the_articles_sentences(embedder):
    """A chunk that starts mid-paragraph is read with its paragraph's lines around it."""
    text = WRAPPED_TXT.split("\n", 2)[2]
    article = _article(text)
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(64, 0, 256))
    assert len(chunks) > 2
    assert any(text[c.start - 1] != "\n" for c in chunks[1:]), "no chunk starts mid-line"
    whole = answer_spans(text)
    for c in chunks:
        inside = [(s, e) for s, e in whole if c.start <= s and e <= c.end]
        assert answer_spans(text, c.start, c.end) == inside


def test_a_window_is_read_with_the_lines_of_its_paragraph():
    """Alone, "...ask the" / "Harbour Trust..." looks like two lines of a dump (too few
    lines to show a wrapping width, the next one capitalised); in its paragraph it is one
    hard-wrapped sentence."""
    text = (
        "The committee met in the village hall on Tuesday evening to discuss the\n"
        "state of the shared plots after the wet spring. It agreed to ask the\n"
        "Harbour Trust for a grant to repair the drainage ditch along the northern\n"
        "fence. The secretary will write to the Trust before the end of the\n"
        "month."
    )
    start = text.index("It agreed")
    end = text.index("fence.") + len("fence.")
    assert _texts(text, answer_spans(text, start, end)) == [text[start:end]]
    assert len(answer_spans(text[start:end])) == 2  # the passage as its own context


def test_wrapped_list_items_are_whole_and_separate():
    text = WRAPPED_TXT.split("\n", 2)[2]
    quoted = _texts(text, answer_spans(text))
    assert (
        "The python-mode trick of autoindenting a line with <tab> is neat and\n"
        "  saves a lot of typing when the lines are long."
    ) in quoted
    assert (
        "A copy of the tenancy agreement, signed by every plot holder on the\n  eastern side."
    ) in quoted
    assert not any(q.startswith("- ") for q in quoted)  # markers are not quoted


def test_one_paragraph_a_line_dumps_keep_lines_apart():
    text = "A standfirst without a full stop\nThe story starts here. It goes on.\nComments"
    assert _texts(text, sentence_spans(text)) == [
        "A standfirst without a full stop",
        "The story starts here.",
        "It goes on.",
        "Comments",
    ]


def test_a_paragraph_wrapped_once_before_a_number_is_one_sentence():
    # Two lines give no wrapping width to measure; a long line stopping mid-sentence
    # before a number runs on, while a short title before a number stays apart.
    wrapped = (
        "The harbour at Port Ellery reopened on Saturday after a rebuild that took two years "
        "and cost\n14 million pounds, the town council said."
    )
    assert _texts(wrapped, sentence_spans(wrapped)) == [wrapped]
    titled = "Results of the regatta\n14 boats finished the course. Two did not."
    assert _texts(titled, sentence_spans(titled))[0] == "Results of the regatta"


def test_markdown_headings_code_and_tables_are_never_answers(tmp_path: Path, embedder):
    (tmp_path / "cites.md").write_text(MARKDOWN, encoding="utf-8")
    [article], _ = load_file(tmp_path / "cites.md", tmp_path)
    quoted = _texts(article.text, answer_spans(article.text))
    assert quoted == [
        "Every answer quotes sentences from the indexed articles.",
        "Each quote is followed by a number in square brackets.",
        "The number points at the\nsource list under the answer, which names the article and "
        "links to it.",
    ]
    kinds = {article.text[u.start : u.end]: u.kind for u in sentences(article.text)}
    assert kinds["How this bot cites its sources"] == "heading"
    assert kinds["Numbered markers"] == "heading"
    assert kinds["Setup notes"] == "heading"
    assert kinds["```sh\npip install article-qa-bot\n```"] == "code"
    # the heading is kept in the chunk as context for its section
    [chunk] = chunk_article(article, embedder.tokenizer, ChunkerConfig(200, 40, 256))
    assert chunk.text.startswith("How this bot cites its sources")
    assert "## Numbered markers" in chunk.text
    # quoting the answer spans of a chunk's own text never yields a heading either
    assert "Numbered markers" not in _texts(chunk.text, answer_spans(chunk.text))


def test_a_window_does_not_end_on_the_next_sections_heading(embedder):
    sections = []
    for n in range(6):
        body = " ".join(f"Section {n} sentence {i} says something useful." for i in range(8))
        sections.append(f"## Part {n}\n\n{body}")
    article = _article("\n\n".join(sections), path="doc.md")
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(80, 0, 256))
    assert len(chunks) > 3
    for c in chunks[:-1]:
        assert not c.text.rstrip().endswith(tuple(f"Part {n}" for n in range(6)))


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "Your support makes all the difference.Russian President Vladimir Putin spoke.",
            ["Your support makes all the difference.", "Russian President Vladimir Putin spoke."],
        ),
        (
            "It ended.“We won,” she said.",
            ["It ended.", "“We won,” she said."],
        ),
        (
            'It ended."We won," she said.',
            ["It ended.", '"We won," she said.'],
        ),
        (
            "The U.S. team, e.g. the coach, paid $3.5m at www.example.com/a.b on Monday.",
            ["The U.S. team, e.g. the coach, paid $3.5m at www.example.com/a.b on Monday."],
        ),
    ],
    ids=["glued", "glued-curly-quote", "glued-straight-quote", "abbreviations"],
)
def test_glued_sentences_split_and_abbreviations_do_not(text, expected):
    assert _texts(text, sentence_spans(text)) == expected


def test_the_seeds_blurb_is_boilerplate_and_its_story_is_not(seeds_dir: Path):
    seed = seeds_dir / "000_39a60bc8d7f6d11b.txt"
    [article], _ = load_file(seed, seeds_dir)
    excluded = " ".join(_texts(article.text, detect(article.text)))
    for pitch in (
        "Your support helps us to tell the story",
        "We believe quality journalism should be available to everyone",
        "Your support makes all the difference.",
        "Join our commenting forum",
    ):
        assert pitch in excluded
    for story in ("Russian President Vladimir Putin", "cut it out", "US is preparing"):
        assert story not in excluded


def test_boilerplate_is_kept_out_of_chunks_and_their_embedded_text(embedder):
    article = _article(PITCH + STORY)  # "...all the difference.The harbour master..."
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(200, 40, 256))
    embedded = "\n".join(embedding_inputs(article.title, chunks, embedder.tokenizer))
    for pitch in ("Your support", "donation", "quality journalism", "commenting", "Reuters"):
        assert pitch not in embedded
    assert chunks[0].text.startswith("The harbour master said on Friday")
    assert "Repairs to the ferry ramp will take two weeks" in embedded
    for c in chunks:  # still verbatim slices of the stored text
        assert article.text[c.start : c.end] == c.text


def test_pitch_words_inside_quotes_are_news_not_boilerplate():
    text = (
        "The charity's director appealed for help on Monday.\n"
        '"Please donate today, because your support makes all the difference," she said.\n'
        "The appeal has raised £40,000 so far."
    )
    assert detect(text) == []


def test_a_block_the_site_repeats_is_boilerplate_but_a_syndicated_story_is_not():
    blurb = "The Valley Courier has covered the county since 1887 and is still family owned."
    stories = ["The bridge reopened on Monday.", "Rain is due at the weekend.", "Fares rise."]
    site = [
        _article(f"{s}\n{blurb}", title=f"Story {i}", path=f"courier/{i}.txt")
        for i, s in enumerate(stories)
    ]
    copies = [
        _article("The bridge reopened on Monday after a year of repairs.", "Bridge", f"w/{i}.txt")
        for i in range(4)
    ]
    marked = {a.id: a for a in mark_boilerplate(site + copies)}
    for a in site:
        assert _texts(a.text, marked[a.id].boilerplate) == [blurb]
    for a in copies:
        assert marked[a.id].boilerplate == ()
    # two articles are not yet a pattern
    assert repeated_blocks(site[:2]) == {"folder:courier": frozenset()}


class _Counting:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.max_seq_length, self.tokenizer = inner.max_seq_length, inner.tokenizer
        self.embedded: list[str] = []

    def encode_documents(self, texts, *, batch_size: int = 64, progress: bool = False):
        self.embedded.extend(texts)
        return self.inner.encode_documents(texts, batch_size=batch_size, progress=progress)

    def encode_query(self, text: str):
        return self.inner.encode_query(text)


def test_incremental_rebuild_reembeds_articles_whose_boilerplate_changed(tmp_path, embedder):
    """A third article repeating a site blurb makes it boilerplate in the first two as well:
    their clean text changed, so they are re-embedded even though their files did not."""
    folder = tmp_path / "articles" / "courier"
    folder.mkdir(parents=True)
    blurb = "The Valley Courier has covered the county since 1887 and is still family owned."
    bodies = {
        "bridge.txt": "Bridge reopens\nThe old bridge reopened on Monday after repairs.",
        "rain.txt": "Rain warning\nForecasters expect heavy rain on Saturday night.",
        "fares.txt": "Bus fares rise\nBus fares will rise by ten pence from April.",
        "fair.txt": "County fair returns\nThe county fair returns in August with a dog show.",
    }
    for name in ("bridge.txt", "rain.txt"):
        (folder / name).write_text(f"{bodies[name]}\n{blurb}\n", encoding="utf-8")
    settings = IndexSettings()
    counter = _Counting(embedder)
    rebuild(settings, lambda: counter)
    assert sum(blurb in t for t in counter.embedded) == 2  # two copies: not yet furniture

    counter.embedded.clear()
    report = rebuild(settings, lambda: counter)
    assert (report.updated, report.unchanged) == (0, 2) and counter.embedded == []

    (folder / "fares.txt").write_text(f"{bodies['fares.txt']}\n{blurb}\n", encoding="utf-8")
    report = rebuild(settings, lambda: counter)
    assert (report.added, report.updated, report.unchanged) == (1, 2, 0)
    assert len(counter.embedded) == 3 and not any(blurb in t for t in counter.embedded)

    counter.embedded.clear()
    (folder / "fair.txt").write_text(f"{bodies['fair.txt']}\n{blurb}\n", encoding="utf-8")
    report = rebuild(settings, lambda: counter)  # the blurb was already furniture
    assert (report.added, report.updated, report.unchanged) == (1, 0, 3)
    assert len(counter.embedded) == 1 and blurb not in counter.embedded[0]


def test_the_labelled_sample_is_read_and_scored(monkeypatch: pytest.MonkeyPatch):
    """The benchmark's sample parses, renders and loads; the detector keeps its dev figures."""
    spec = importlib.util.spec_from_file_location(
        "boilerplate_eval", REPO / "benchmarks" / "boilerplate_eval.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    totals, _ = bench.evaluate_split("dev")
    assert totals["loader only"].recall < 0.5  # the sample does hold boilerplate to find
    full = totals["+ site repetition (full)"]
    assert full.precision >= 0.95 and full.recall >= 0.95


@pytest.mark.parametrize(
    "line,furniture",
    [
        ("By Tom Hale, Transport Reporter", True),
        ("Published 12 March 2026 · 4 min read", True),
        ("Read more: Bayline promises new vessel by 2028", True),
        ("Share on Facebook Share on X Copy link", True),
        ("Advertisement", True),
        ("By noon the river had burst its banks.", False),
        ("Updated figures show unemployment fell.", False),
        ("Related charges were dropped in 2019.", False),
        ("Copy on write", False),
    ],
)
def test_a_short_line_is_furniture_only_by_its_shape(line: str, furniture: bool):
    text = f"The council met on Monday to discuss the budget.\n{line}\nIt agreed a rise."
    found = _texts(text, detect(text))
    assert found == ([line] if furniture else [])


_MARKUP = [
    "# ", "## ", "- ", "1. ", "> ", "```", "~~~", "---", "===", "| a | b |", "|---|---|",
    "![x](y)", "\n", "\n\n", "  ", ". ", '"', "“", "”", "Mr. ", "U.S. ", "e.g. ",
    "Your support makes all the difference.", "Read more: x", "By Tom Hale", "Comments",
    "Sign up for our newsletter.", "we", "you", "Join our commenting forum",
]  # fmt: skip
_PIECES = st.one_of(st.text(max_size=40), st.sampled_from(_MARKUP))


@settings(max_examples=150, deadline=None)
@given(text=st.lists(_PIECES, max_size=50).map("".join), cut=st.integers(0, 400))
def test_units_and_boilerplate_spans_are_ordered_disjoint_and_inside(text: str, cut: int):
    start = min(cut, len(text))
    for spans in (sentence_spans(text), sentence_spans(text, start), detect(text)):
        assert all(0 <= s < e <= len(text) for s, e in spans)
        assert all(e <= s2 for (_, e), (s2, _) in itertools.pairwise(spans))
    for s, e in sentence_spans(text, start):
        assert s >= start and text[s:e] == text[s:e].strip()
    assert set(answer_spans(text)) <= set(sentence_spans(text))


@settings(max_examples=40, deadline=None)
@given(text=st.lists(_PIECES, max_size=50).map("".join))
def test_chunks_never_hold_boilerplate(embedder, text: str):
    article = _article(text)
    excluded = detect(text)
    for c in chunk_article(article, embedder.tokenizer, ChunkerConfig(60, 15, 256)):
        assert text[c.start : c.end] == c.text
        if any(s < c.end and c.start < e for s, e in excluded):
            # only the fallback for an article that is all furniture may hold it
            assert all(
                any(s <= u.start and u.end <= e for s, e in excluded) for u in sentences(text)
            )
