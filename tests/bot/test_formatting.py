"""Pure formatting: embeds within Discord's limits, message splitting, terminal text."""

from __future__ import annotations

from dataclasses import dataclass

import discord
import pytest

from bot.formatting import (
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOUND_COLOUR,
    NOT_FOUND_COLOUR,
    TITLE_LIMIT,
    answer_embed,
    answer_text,
    embed_size,
    help_embed,
    sources_page,
    split_message,
    strip_mention,
    title_choices,
    truncate,
)
from bot.models import Answer, Citation


def citation(
    n: int = 1,
    *,
    title: str = "Harbour lights return",
    url: str | None = None,
    quote: str = "The old harbour lights were switched on again.",
    source: str = "harbour.txt",
) -> Citation:
    return Citation(
        n=n, article_id=f"a{n}", title=title, source=url or source, chunk_id=f"a{n}#0",
        start=0, end=len(quote), quote=quote, score=0.9, url=url,
    )  # fmt: skip


def answer(
    text: str = "The lights were switched on again [1].",
    *cites: Citation,
    found: bool = True,
    question: str = "When did the lights return?",
) -> Answer:
    return Answer(question=question, text=text, found=found, citations=list(cites or [citation()]))


def assert_within_limits(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= TITLE_LIMIT
    assert len(embed.description or "") <= DESCRIPTION_LIMIT
    assert len(embed.fields) <= FIELD_COUNT_LIMIT
    for f in embed.fields:
        assert 0 < len(f.name or "") <= FIELD_NAME_LIMIT
        assert 0 < len(f.value or "") <= FIELD_VALUE_LIMIT
    assert embed_size(embed) <= EMBED_TOTAL_LIMIT


# ------------------------------------------------------------------------------ truncate


def test_truncate_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("the quick brown fox jumps over the lazy dog", 20)
    assert cut == "the quick brown fox…"
    assert len(cut) <= 20


def test_truncate_cuts_inside_a_word_only_when_it_must() -> None:
    cut = truncate("a" * 50, 10)
    assert cut == "a" * 9 + "…"
    assert truncate("abc", 1) == "…"
    assert truncate("abc", 0) == ""


# ------------------------------------------------------------------------------ answer embed


def test_answer_embed_shows_text_markers_and_numbered_sources() -> None:
    url = "https://news.example.org/harbour (2021)"
    society = citation(2, title="Society notes", source="notes/society.md")
    embed = answer_embed(
        answer("Lit again [1], said the society [2].", citation(1, url=url), society)
    )
    assert embed.description == "Lit again [1], said the society [2]."
    assert embed.title == "When did the lights return?"
    assert embed.colour == FOUND_COLOUR
    first, second = embed.fields
    assert first.name == "[1] Harbour lights return"
    assert "[Harbour lights return](https://news.example.org/harbour%20%282021%29)" in first.value
    assert "> The old harbour lights were switched on again." in first.value
    assert second.name == "[2] Society notes"
    assert "`notes/society.md`" in second.value  # no URL: the source in code style
    assert_within_limits(embed)


def test_quotes_stay_verbatim_mentions_included() -> None:
    quote = "@everyone meet <@123456789012345678> at *noon*"
    embed = answer_embed(answer("Meet at noon [1].", citation(quote=quote)))
    assert quote in embed.fields[0].value


def test_not_found_answers_look_different_and_list_the_closest_sources() -> None:
    embed = answer_embed(
        answer("The indexed articles don't say.", citation(), found=False, question="Who won?")
    )
    assert embed.colour == NOT_FOUND_COLOUR
    assert embed.colour != FOUND_COLOUR
    assert "don't say" in embed.description
    assert "Closest sources" in embed.description
    assert embed.fields[0].name.startswith("[1] ")


def test_huge_answers_are_trimmed_to_discord_limits() -> None:
    long_title = "T" * 400
    long_quote = "word " * 2000
    cites = [
        citation(n, title=f"{long_title} {n}", quote=long_quote, url="https://e.org/" + "x" * 600)
        for n in range(1, 31)
    ]
    embed = answer_embed(answer("answer " * 3000, *cites, question="q" * 1000))
    assert_within_limits(embed)
    assert embed.description.endswith("…")
    assert embed.title.endswith("…")
    assert embed.fields  # sources are kept, with shorter quotes, before anything is dropped
    assert embed.fields[0].name.startswith("[1] ")
    assert embed.to_dict()  # serialisable as sent


@pytest.mark.parametrize("n_cites", [0, 1, 25, 40])
def test_any_number_of_sources_fits(n_cites: int) -> None:
    cites = [citation(n, quote="q " * 600) for n in range(1, n_cites + 1)]
    a = Answer(question="q?", text="t " * 2500, found=True, citations=cites)
    embed = answer_embed(a)
    assert_within_limits(embed)
    assert bool(embed.fields) == bool(n_cites)
    assert [f.name.split("]")[0] for f in embed.fields] == [
        f"[{n}" for n in range(1, len(embed.fields) + 1)
    ]  # sources are dropped from the end only


def test_link_text_cannot_break_the_markdown_link() -> None:
    embed = answer_embed(answer("x [1]", citation(title="Odd [title] here", url="https://e.org/a")))
    assert r"[Odd \[title\] here](https://e.org/a)" in embed.fields[0].value


# ------------------------------------------------------------------------------ split_message


def test_split_message_keeps_short_text_whole() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("   ") == []


def test_split_message_prefers_paragraph_then_line_then_space() -> None:
    para = "a" * 60
    text = f"{para}\n\n{para}\n{para} {para}"
    pieces = split_message(text, limit=130)
    assert pieces[0] == para  # the paragraph break wins over the later line break
    assert all(len(p) <= 130 for p in pieces)
    assert split_message(f"{para}\n{para}", limit=100) == [para, para]
    assert split_message("one two three four", limit=9) == ["one two", "three", "four"]


def test_split_message_cuts_words_longer_than_the_limit() -> None:
    pieces = split_message("x" * 4500)
    assert [len(p) for p in pieces] == [2000, 2000, 500]


def test_split_message_loses_no_words() -> None:
    words = [f"w{i}" for i in range(3000)]
    text = (
        " ".join(words[:1000]) + "\n\n" + "\n".join(words[1000:2000]) + " " + " ".join(words[2000:])
    )
    pieces = split_message(text, limit=2000)
    assert all(0 < len(p) <= 2000 for p in pieces)
    assert " ".join(pieces).split() == words


# ------------------------------------------------------------------------------ answer_text


def test_answer_text_for_the_terminal() -> None:
    a = answer("Lit again [1].", citation(1, quote="switched  on\nagain", source="harbour.txt"))
    assert answer_text(a).splitlines() == [
        "Lit again [1].",
        "",
        "Sources:",
        "[1] Harbour lights return — harbour.txt",
        '    "switched on again"',
    ]


def test_answer_text_without_sources_is_just_the_text() -> None:
    a = Answer(question="q", text="The indexed articles don't say.", found=False)
    assert answer_text(a) == "The indexed articles don't say."


# ------------------------------------------------------------------------------ other pieces


@dataclass
class Art:
    title: str
    source: str
    url: str | None = None


def test_sources_page_paginates_and_filters() -> None:
    arts = [Art(f"Article {i:02d}", f"a{i}.txt") for i in range(1, 24)]
    arts.append(Art("Harbour lights", "https://e.org/h", "https://e.org/h"))
    first = sources_page(arts)
    assert first.footer.text == "Page 1 of 3"
    assert first.description.count("\n") == 9  # 10 lines
    assert "(24)" in first.title
    last = sources_page(arts, page=99)  # clamped to the last page
    assert last.footer.text == "Page 3 of 3"
    assert "[Harbour lights](https://e.org/h)" in last.description
    found = sources_page(arts, query="HARBOUR")
    assert found.description == "1. [Harbour lights](https://e.org/h)"
    assert "No indexed article matches" in sources_page(arts, query="zzz").description
    assert "no articles" in sources_page([]).description


def test_title_choices_for_autocomplete() -> None:
    titles = ["The harbour", "Harbour lights", "Other", "Harbour lights", "X" * 300]
    assert title_choices(titles, "harb") == ["Harbour lights", "The harbour"]
    assert len(title_choices([f"t{i}" for i in range(100)], "")) == 25
    assert all(len(c) <= 100 for c in title_choices(titles, ""))


def test_strip_mention_removes_only_the_bot() -> None:
    assert strip_mention("<@42> what is it?", 42) == "what is it?"
    assert strip_mention("hey <@!42>  ask <@7>", 42) == "hey ask <@7>"


def test_help_embed_mentions_commands_and_dms() -> None:
    embed = help_embed(cooldown_seconds=10, answer_mentions=True)
    text = embed.description + "".join(f.value for f in embed.fields)
    for word in ("/ask", "/sources", "/reindex", "/help", "direct message", "mention me"):
        assert word in text
    assert "10 s" in embed.footer.text
    assert_within_limits(embed)
