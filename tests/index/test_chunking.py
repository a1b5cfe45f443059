"""Chunking: every chunk fits the model, points back at its text exactly, and cuts at sentences.

The tokenizer is the real model's (the session `embedder`), because "fits the model" is a
statement about its word pieces and nothing else.
"""

from __future__ import annotations

import itertools
import random

import pytest

from index.chunking import TITLE_TOKEN_CAP, ChunkerConfig, chunk_article, embedding_inputs
from index.models import Article
from index.sentences import sentence_spans

WORDS = [
    "river", "mountain", "election", "summit", "kremlin", "treaty", "senator", "harbour",
    "quantum", "festival", "library", "orchard", "engine", "archive", "meadow", "glacier",
    "parliament", "lantern",
]  # fmt: skip


def _article(text: str, title: str = "A title") -> Article:
    return Article(id="a.txt", title=title, text=text, source="a.txt", path="a.txt")


def _prose(rng: random.Random, sentences: int) -> str:
    """Ordinary paragraphs of short sentences, as news articles have."""
    out = []
    for i in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])
        out.append(sentence + ("\n\n" if i % 7 == 6 else " "))
    return "".join(out).strip()


def _random_word(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _adversarial() -> dict[str, str]:
    rng = random.Random(7)
    consonants = "bcdfghjklmnpqrstvwxz"
    return {
        # one sentence of 5,000 words and no punctuation at all
        "run-on": " ".join(rng.choice(WORDS) for _ in range(5000)),
        # words of 30-400 characters (BERT maps words over 100 characters to one [UNK])
        "long-words": " ".join(
            _random_word(rng, rng.randint(30, 400), "abcdefghijklmnopqrstuvwxyz0123456789")
            for _ in range(300)
        ),
        # unpronounceable 99-character words: dozens of word pieces each, so cuts fall
        # inside words
        "piece-heavy-words": " ".join(_random_word(rng, 99, consonants) for _ in range(300)),
        "accented-words": " ".join(
            _random_word(rng, rng.randint(5, 99), "àéîõüçñßøåæœ") for _ in range(400)
        ),
        # CJK without a single space or full stop
        "cjk": "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(3000)),
        "cjk-sentences": "。".join(
            "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(40)) for _ in range(60)
        ),
        "tiny-lines": "\n".join(rng.choice(WORDS) for _ in range(3000)),
        "emoji": " ".join(
            "".join(rng.choice("😀🎉👍🏽🇺🇸a") for _ in range(rng.randint(5, 60)))
            for _ in range(300)
        ),
        "mixed": " ".join(
            "x" * rng.randint(1, 120) + rng.choice(["", ".", "!", "?", ",", "-", "é", "中文"])
            for _ in range(1500)
        ),
    }


ADVERSARIAL = _adversarial()
LONG_TITLE = " ".join(random.Random(3).choice(WORDS) for _ in range(300))


def _check_invariants(article: Article, chunks, embedder) -> None:
    assert chunks, "a non-empty article must yield chunks"
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.article_id == article.id
        assert 0 <= c.start < c.end <= len(article.text)
        assert article.text[c.start : c.end] == c.text
    # The counts stored are the real word pieces of what is embedded, and fit the model.
    inputs = embedding_inputs(article.title, chunks, embedder.tokenizer)
    real = [len(ids) for ids in embedder.tokenizer(inputs, add_special_tokens=True)["input_ids"]]
    assert [c.tokens for c in chunks] == real
    assert max(real) <= embedder.max_seq_length
    # Chunks move forward through the text.
    assert all(b.start > a.start and b.end > a.end for a, b in itertools.pairwise(chunks))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("title", ["T", LONG_TITLE], ids=["short-title", "long-title"])
@pytest.mark.parametrize(
    "tokens,overlap", [(200, 40), (254, 100), (4096, 0)], ids=["default", "near-limit", "huge"]
)
def test_adversarial_text_never_exceeds_model_limit(embedder, name, title, tokens, overlap):
    article = _article(ADVERSARIAL[name], title)
    config = ChunkerConfig(tokens, overlap, embedder.max_seq_length)
    _check_invariants(article, chunk_article(article, embedder.tokenizer, config), embedder)


def test_all_text_is_covered(embedder):
    """Every word of the article is inside some chunk: nothing is silently dropped."""
    text = ADVERSARIAL["piece-heavy-words"] + "\n" + ADVERSARIAL["run-on"][:3000]
    article = _article(text)
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(128, 0, 256))
    covered = bytearray(len(text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def test_prose_chunks_start_and_end_on_sentence_boundaries(embedder):
    article = _article(_prose(random.Random(1), 120))
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(120, 30, 256))
    _check_invariants(article, chunks, embedder)
    assert len(chunks) > 5
    spans = sentence_spans(article.text)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    for c in chunks:
        assert c.start in starts, f"chunk {c.ordinal} starts mid-sentence: {c.text[:40]!r}"
        assert c.end in ends, f"chunk {c.ordinal} ends mid-sentence: {c.text[-40:]!r}"
        assert c.tokens <= 120 + len(embedder.tokenizer("A title")["input_ids"])


def test_overlap_when_configured_and_none_when_not(embedder):
    article = _article(_prose(random.Random(2), 120))
    tok = embedder.tokenizer
    with_overlap = chunk_article(article, tok, ChunkerConfig(120, 40, 256))
    without = chunk_article(article, tok, ChunkerConfig(120, 0, 256))
    for a, b in itertools.pairwise(with_overlap):
        assert b.start < a.end, "consecutive chunks should share at least one sentence"
        # what they share is whole sentences of at most ~40 word pieces
        shared = article.text[b.start : a.end]
        assert len(tok(shared, add_special_tokens=False)["input_ids"]) <= 40
    for a, b in itertools.pairwise(without):
        assert b.start >= a.end
    assert len(with_overlap) > len(without)


def test_long_title_is_capped_so_the_passage_keeps_room(embedder):
    article = _article(_prose(random.Random(4), 40), LONG_TITLE)
    chunks = chunk_article(article, embedder.tokenizer, ChunkerConfig(200, 0, 256))
    _check_invariants(article, chunks, embedder)
    embedded_title = embedding_inputs(article.title, chunks, embedder.tokenizer)[0].split("\n")[0]
    assert LONG_TITLE.startswith(embedded_title)
    assert len(embedder.tokenizer(embedded_title, add_special_tokens=False)["input_ids"]) == (
        TITLE_TOKEN_CAP
    )
    # with the title capped, a passage still gets most of its 200-piece budget
    assert max(c.tokens for c in chunks) > 150


def test_short_article_is_one_chunk_with_its_whole_text(embedder):
    article = _article("Just one sentence here.")
    [chunk] = chunk_article(article, embedder.tokenizer, ChunkerConfig(200, 40, 256))
    assert (chunk.start, chunk.end, chunk.text) == (0, len(article.text), article.text)
    assert chunk.id == "a.txt#0"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 200_000,  # one "word": a single [UNK] piece to the tokenizer
        ("a few words " + "y" * 5_000 + " ") * 10,
    ],
    ids=["no-space", "giant-words"],
)
def test_words_the_tokenizer_cannot_split_still_give_bounded_chunks(embedder, text):
    from index.chunking import MAX_CHARS_PER_TOKEN

    article = _article(text)
    config = ChunkerConfig(200, 40, 256)
    chunks = chunk_article(article, embedder.tokenizer, config)
    assert max(len(c.text) for c in chunks) <= config.max_tokens * MAX_CHARS_PER_TOKEN
    assert all(article.text[c.start : c.end] == c.text for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(article.text.rstrip())
