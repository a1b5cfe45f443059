"""Pure formatting: embeds within Discord's limits, message splitting, terminal text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord
import pytest
from discord_markdown import live_markup, rendered
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.formatting import (
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOUND_COLOUR,
    MESSAGE_LIMIT,
    NOT_FOUND_COLOUR,
    TITLE_LIMIT,
    answer_embed,
    answer_text,
    embed_size,
    group_citations,
    help_embed,
    md_text,
    safe_url,
    source_link,
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
    assert rendered(embed.description) == "Lit again [1], said the society [2]."
    assert live_markup(embed.description) == []
    assert embed.title == "When did the lights return?"
    assert embed.colour == FOUND_COLOUR
    first, second = embed.fields
    assert first.name == "[1] Harbour lights return"
    assert "[Harbour lights return](https://news.example.org/harbour%20%282021%29)" in first.value
    assert "> The old harbour lights were switched on again." in first.value
    assert second.name == "[2] Society notes"
    assert "`notes/society.md`" in second.value  # no URL: the source in code style
    assert_within_limits(embed)


def test_quotes_read_as_the_article_but_mentions_and_markup_are_inert() -> None:
    quote = "@everyone meet <@123456789012345678> at *noon*"
    embed = answer_embed(answer("Meet at noon [1].", citation(quote=quote)))
    shown = embed.fields[0].value.split("\n> ", 1)[1]
    assert rendered(shown) == quote
    assert live_markup(shown) == []


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
    assert embed.fields[0].name == r"[1] Odd \[title\] here"


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
    odd = sources_page(arts, query="*bold* [x](http://e.org)")
    assert live_markup(odd.description.split("“")[1].split("”")[0]) == []
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


# ------------------------------------------------------------------------------ hostile articles

EVIL = "http://evil.example/login"
HOSTILE = {
    "masked link": f"Contact [the official desk]({EVIL}) today.",
    "two masked links": f"[a](http://e.org/a) and [the official desk]({EVIL})",
    "link text is a url": "[https://bank.example](http://evil.example/bank)",
    "angle link": f"[desk](<{EVIL}>)",
    "mentions": "@everyone @here hi <@123456789012345678> <@!1234567890123456789> "
    "<@&12345678901234567>",
    "spoiler": "the winner is ||Marta Ilves||",
    "code": "run `rm -rf /` and ```py\nprint(1)\n```",
    "headings": "# Free Nitro\n## Claim now\n### here\n-# small print",
    "quote and lists": "> quoted\n>>> all of it\n- item\n+ item\n* item\n1. first\n2) second",
    "emphasis": "**bold** __underline__ *it* _it_ ~~strike~~ \\*not\\* a\\b",
    "discord tokens": "<t:1700000000:R> <#123456789012345678> </ask:123> "
    "<:wave:123456789012345678>",
    "escape sequences": "a\x1b[2J\x1b]0;pwned\x07b"
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x9b31m",
    "bidi": "invoice_\u202efdp.exe and \u2067isolated\u2069",
}
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_answer(text: str, *, url: str | None = None) -> Answer:
    cites = [
        citation(1, title=text, quote=text, url=url, source="evil.txt"),
        citation(2, title=text, quote=text + " again", source="odd\x1b[31m`name`.txt"),
    ]
    return Answer(question=text, text=f"{text} [1] [2]", found=True, citations=cites)


def visible_pieces(embed: discord.Embed) -> list[str]:
    """Every piece of article text in `embed`, as sent (without our own markup)."""
    pieces = [embed.title or "", (embed.description or "").split("\n\n**Closest sources**")[0]]
    for f in embed.fields:
        pieces.append(f.name.split("] ", 1)[1])
        pieces += [line[2:] for line in f.value.split("\n") if line.startswith("> ")]
    return pieces


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_article_text_is_shown_as_text_on_discord(kind: str) -> None:
    text = HOSTILE[kind]
    embed = answer_embed(hostile_answer(text, url="https://news.example.org/a"))
    assert_within_limits(embed)
    sent = str(embed.to_dict())
    assert not FORBIDDEN.search(json_text(embed))
    for piece in visible_pieces(embed):
        assert live_markup(piece) == [], (piece, sent)
    # What a reader sees is the article's text (controls removed, whitespace as sent).
    expected = " ".join(printable_text(text).split())
    assert " ".join(rendered(embed.fields[0].value.split("\n> ", 1)[1]).split()) == expected
    # No link from the article is masked: the only masked link is ours, to the article.
    assert set(re.findall(r"\]\((\S+?)\)", sent)) <= {"https://news.example.org/a"}


def json_text(embed: discord.Embed) -> str:
    import json

    return json.dumps(embed.to_dict(), ensure_ascii=False)


def printable_text(text: str) -> str:
    from index.display import printable

    return printable(text)


def test_masked_link_from_an_article_shows_its_address() -> None:
    embed = answer_embed(hostile_answer(HOSTILE["masked link"]))
    shown = rendered(embed.description)
    assert f"[the official desk]({EVIL})" in shown  # brackets and address visible
    assert f"<{EVIL}>" in embed.description  # an autolink to the visible address only
    assert "](" not in embed.description


def test_titles_are_escaped_exactly_once() -> None:
    embed = answer_embed(answer("x [1]", citation(title="[Free Nitro]", url="https://e.org/n")))
    assert embed.fields[0].name == r"[1] \[Free Nitro\]"
    assert r"[\[Free Nitro\]](https://e.org/n)" in embed.fields[0].value
    assert "\\\\" not in embed.fields[0].name + embed.fields[0].value


def test_our_source_links_cannot_be_forged() -> None:
    # A title cannot close our link and open its own.
    forged = source_link("News](javascript:alert(1)) [x", "https://e.org/a", "a.txt")
    assert forged.startswith("[") and forged.endswith("](https://e.org/a)")
    assert forged.count("](") == 1
    # A title that reads as an address is never the text of a link elsewhere.
    assert source_link("https://bank.example/login", EVIL, "s") == (
        "<https://bank.example/login> — <http://evil.example/login>"
    )
    assert "](" not in source_link("www.bank.example", EVIL, "s")
    # Only http(s) addresses become links; others show as code.
    assert source_link("T", "javascript:alert(1)", "javascript:alert(1)") == (
        "T — `javascript:alert(1)`"
    )
    assert "](" not in source_link("T", "data:text/html,hi", "x.txt")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.org/a b(1)", "https://e.org/a%20b%281%29"),
        ("HTTP://E.org/x", "http://E.org/x"),
        ("http://bücher.example/ä", "http://xn--bcher-kva.example/%C3%A4"),
        ("http://[::1]:8080/x?q=1", "http://[::1]:8080/x?q=1"),
        ("https://e.org/<script>", "https://e.org/%3Cscript%3E"),
        ("javascript:alert(1)", None),
        ("ftp://e.org/f", None),
        ("https://bank.example@evil.example/", None),
        ("https://e.org/\x1b[2J", None),
        ("https://e.org/\u202etxt", None),
        ("https://e.org:99999/", None),
        ("https:///nohost", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == (expected.replace("E.org", "e.org") if expected else None)


# ------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("unit", ["*", "_", "[", "\\", "<@123456789012345678>", "@everyone "])
def test_limits_hold_after_escaping(unit: str) -> None:
    text = unit * 6000
    cites = [citation(n, title=text, quote=text, url="https://e.org/a") for n in range(1, 30)]
    embed = answer_embed(Answer(question=text, text=text, found=False, citations=cites))
    assert_within_limits(embed)
    for piece in visible_pieces(embed):
        assert live_markup(piece.removesuffix("…")) == []
        assert not re.search(r"(?<!\\)(\\\\)*\\…?$", piece)  # no dangling backslash
    assert rendered(embed.description).startswith(unit.strip()[:1])


def test_a_cut_never_shows_half_an_address() -> None:
    url = "https://e.org/" + "a" * 500
    assert md_text(f"see {url}", 100) == "see…"
    assert md_text(f"see {url} now", 1000) == f"see <{url}> now"


UNITS = [*"ab @#*_~|`[]()<>\\-+1.:/\n\x1b\u202e", "http://", "https://e.org/", "@everyone"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from(UNITS), max_size=40).map("".join)
    | st.sampled_from(sorted(HOSTILE.values())),
    limit=st.integers(min_value=1, max_value=120),
)
def test_md_text_is_inert_and_within_its_limit(text: str, limit: int) -> None:
    out = md_text(text, limit)
    assert len(out) <= limit
    assert live_markup(out) == []
    assert "](" not in out  # no link can close here, whatever opened it
    assert not re.search(r"(?<!\\)(\\\\)*\\…$", out)
    full = rendered(md_text(text))
    assert full == printable_text(text)
    shown = rendered(out)
    assert full.startswith(shown.removesuffix("…").rstrip())


def test_split_message_never_leaves_a_dangling_backslash() -> None:
    escaped = md_text("*" * 3000)
    pieces = split_message(escaped)
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert all(live_markup(p) == [] for p in pieces)
    assert "".join(pieces) == escaped


# ------------------------------------------------------------------------------ grouped sources


def quoted(n: int, quote: str, article: str, start: int = 0) -> Citation:
    return Citation(
        n=n, article_id=article, title=f"Title of {article}", source=f"{article}.txt",
        chunk_id=f"{article}#0", start=start, end=start + len(quote), quote=quote, score=0.5,
    )  # fmt: skip


GROUPED = Answer(
    question="What did the mayor say?",
    text="She said the bridge reopens [1] and costs were lower [2]. She thanked crews [1].",
    found=True,
    citations=[
        quoted(1, "The bridge reopens on Monday.", "harbour", 0),
        quoted(1, "Crews worked through the night.", "harbour", 40),
        quoted(2, "Costs were lower than feared.", "budget"),
        quoted(1, "The bridge reopens on Monday.", "harbour", 0),  # the same quote again
    ],
)


def test_citations_sharing_a_number_are_one_source() -> None:
    groups = group_citations(GROUPED.citations)
    assert [(g.numbers, g.title) for g in groups] == [
        ((1,), "Title of harbour"),
        ((2,), "Title of budget"),
    ]
    assert groups[0].quotes == ("The bridge reopens on Monday.", "Crews worked through the night.")


def test_grouped_sources_in_the_embed() -> None:
    embed = answer_embed(GROUPED)
    assert_within_limits(embed)
    assert [f.name for f in embed.fields] == ["[1] Title of harbour", "[2] Title of budget"]
    assert embed.fields[0].value.split("\n") == [
        "`harbour.txt`",
        "> The bridge reopens on Monday.",
        "> Crews worked through the night.",
    ]
    assert embed.footer.text.startswith("2 sources")


def test_grouped_sources_in_the_terminal() -> None:
    assert answer_text(GROUPED).splitlines()[2:] == [
        "Sources:",
        "[1] Title of harbour — harbour.txt",
        '    "The bridge reopens on Monday."',
        '    "Crews worked through the night."',
        "[2] Title of budget — budget.txt",
        '    "Costs were lower than feared."',
    ]


def test_one_article_under_two_numbers_is_listed_once() -> None:
    a = Answer(
        question="q",
        text="x [1] y [2] z [3]",
        found=True,
        citations=[
            quoted(1, "First.", "harbour"),
            quoted(2, "Second.", "budget"),
            quoted(3, "Third.", "harbour", 10),
        ],
    )
    names = [f.name for f in answer_embed(a).fields]
    assert names == ["[1, 3] Title of harbour", "[2] Title of budget"]
    lines = answer_text(a).splitlines()
    assert lines.count("[1, 3] Title of harbour — harbour.txt") == 1
    assert sum("harbour" in line for line in lines) == 1


def test_many_quotes_under_one_number_share_the_field() -> None:
    cites = [quoted(1, f"Quote number {i} " + "words " * 80, "harbour", i * 600) for i in range(9)]
    embed = answer_embed(Answer(question="q", text="x [1]", found=True, citations=cites))
    assert_within_limits(embed)
    assert len(embed.fields) == 1
    quotes = [line for line in embed.fields[0].value.split("\n") if line.startswith("> ")]
    assert len(quotes) >= 2
    assert [q[2:].split()[2] for q in quotes] == [str(i) for i in range(len(quotes))]  # in order


# ------------------------------------------------------------------------------ terminal


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_article_text_reaches_the_terminal_without_controls(kind: str) -> None:
    text = answer_text(hostile_answer(HOSTILE[kind], url="https://e.org/a"))
    assert not FORBIDDEN.search(text.replace("\n", " "))
    assert "\x1b" not in text and "\u202e" not in text


def test_terminal_keeps_ordinary_unicode() -> None:
    quote = "Ünïcödé — 東京 «quotes» 🎉 stay"
    a = answer("Text [1].", citation(quote=quote, title="Café ☕"))
    assert f'"{quote}"' in answer_text(a)
    assert "[1] Café ☕ — harbour.txt" in answer_text(a)


def test_reindex_summary_shows_file_names_as_code() -> None:
    from bot.transports.qa_cog import rebuild_summary
    from index.models import RebuildReport, Skipped

    name = "x` @everyone [desk](http://evil.example) `\x1b[2J\n.txt"
    report = RebuildReport(articles=1, skipped=[Skipped(name, f"not UTF-8: {name} *bad*")])
    line = rebuild_summary(report).split("\n")[-1]
    code, reason = line.removeprefix("- ").split(": ", 1)
    assert code.count("`") == 2 and code.startswith("`") and code.endswith("`")
    assert "\x1b" not in line
    assert "](" not in reason  # inside the code span a link is only text
    assert live_markup(reason) == []
