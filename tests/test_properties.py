"""Properties that must hold for any input a user or an article author can send (hypothesis).

Over questions (any Unicode, controls and escape sequences, huge, empty, punctuation only,
mentions), article text and file names:

- no traceback reaches a user: `QAService.answer` raises nothing but a `UserFacingError`,
  and `ask`/`search` end with an answer or one `error:` line;
- every quote is verbatim at its offsets in the stored article text;
- nothing a terminal-facing renderer prints (the CLIs' plain output, the terminal chat, the
  rebuild report) holds a control sequence.

One small index of awkward articles is built per module with the session's real model and
reused; example counts stay modest so the file runs in well under a minute. The slow marker
runs the question properties with many more examples (`pytest -m slow`).
"""

from __future__ import annotations

import io
import os
import re
import string
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import UserFacingError
from bot.service import QAService
from bot.settings import Settings
from bot.transports.terminal import chat
from index.articles import load_articles
from index.chunking import ChunkerConfig, chunk_article
from index.cli_common import skipped_line
from index.display import printable
from index.rebuild import rebuild
from index.settings import IndexSettings
from index.store import open_current

# What a terminal must never receive: C0 controls but tab and newline (ESC, CR, BEL...),
# DEL, C1 controls (8-bit CSI/OSC), bidi embeddings, overrides and isolates.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
THOROUGH = settings(FAST, max_examples=200)

ARTICLES = {
    "bridge.txt": "Bridge repairs finished early\n"
    "The council spent 2.4 million euros repairing the old stone bridge over the Lenne. "
    "Work began in March and ended in October, two weeks ahead of plan. "
    "The mayor said the bridge would carry buses again from November.",
    "orchard.txt": "\x1b]0;owned\x07The community \x1b[2Jorchard\n"
    "Anyone living in the village may pick fruit from the community orchard. "
    "The trees were planted by \u202eschool children\u202c in 1998 and @everyone is welcome.\n\n"
    "Ask <@123456789> or visit [the desk](http://evil.example/login) for a \x1b[31mladder\x1b[0m.",
    "ferry\x1b[2J\x07news.txt": "Ferry timetable changes\n"
    "From Monday the ferry leaves the harbour every forty minutes instead of every hour. "
    "Tickets bought before the change remain valid until the end of the month.",
}
WORDS = sorted(set(re.findall(r"[A-Za-z]{3,}", " ".join(ARTICLES.values()))))

CONTROLS = st.sampled_from(
    ["\x1b[2J", "\x1b]0;title\x07", "\x1b]8;;http://evil.example\x1b\\", "\r", "\x00", "\x9b31m",
     "\u202e", "\x07", "\x7f", "\t", "\n"]
)  # fmt: skip
MENTIONS = st.sampled_from(["@everyone", "@here", "<@123456789>", "<@&42>", "<#7>"])

questions = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=80),
    st.text(alphabet=string.punctuation + " ", max_size=40),
    st.text(min_size=490, max_size=5000),
    st.lists(
        st.one_of(st.sampled_from(WORDS), CONTROLS, MENTIONS, st.text(max_size=5)), max_size=25
    ).map(" ".join),
)


@pytest.fixture(scope="module")
def awkward_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    root = tmp_path_factory.mktemp("awkward")
    folder = root / "articles"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings_ = IndexSettings(articles_dir=folder, index_dir=root / "index")
    report = rebuild(settings_, lambda: embedder)
    assert report.published and report.articles == 2, report  # the ferry's name is refused
    return root / "index"


@pytest.fixture(scope="module")
def stored_texts(awkward_index: Path) -> dict[str, str]:
    stored = open_current(awkward_index)
    try:
        return {a.id: stored.article_text(a.id) or "" for a in stored.articles()}
    finally:
        stored.close()


@pytest.fixture(scope="module")
def service(awkward_index: Path, embedder) -> QAService:
    return QAService(
        Settings(index_dir=awkward_index, articles_dir=awkward_index.parent / "articles"),
        embedder=embedder,
    )


@pytest.fixture
def cli_embedder(monkeypatch: pytest.MonkeyPatch, embedder) -> None:
    """The CLIs load the model by name; hand them the session's copy instead of a new load."""
    monkeypatch.setattr("bot.service.load_embedder", lambda *a, **k: embedder)
    monkeypatch.setattr("index.cli.load_embedder", lambda *a, **k: embedder)


def assert_quotes_verbatim(answer, texts: dict[str, str]) -> None:
    for c in answer.citations:
        assert c.article_id in texts, c
        assert texts[c.article_id][c.start : c.end] == c.quote, c


def check_question(service: QAService, texts: dict[str, str], question: str) -> None:
    try:
        answer = service.answer(question)
    except UserFacingError as exc:  # anything else is a traceback waiting to happen
        message = str(exc)
        assert message.strip() and "\n" not in message and not CONTROL.search(message)
        return
    assert_quotes_verbatim(answer, texts)


@FAST
@given(question=questions)
def test_answer_raises_only_user_facing_errors_and_quotes_verbatim(
    service: QAService, stored_texts: dict[str, str], question: str
) -> None:
    check_question(service, stored_texts, question)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # hundreds of examples, each embedding a question
@THOROUGH
@given(question=questions)
def test_answer_properties_thoroughly(
    service: QAService, stored_texts: dict[str, str], question: str
) -> None:
    check_question(service, stored_texts, question)


@settings(FAST, max_examples=10)
@given(lines=st.lists(questions, min_size=1, max_size=3))
def test_terminal_chat_prints_no_control_sequence(service: QAService, lines: list[str]) -> None:
    stdin = io.StringIO("\n".join(line.replace("\n", " ") for line in lines) + "\n")
    out = io.StringIO()
    chat(service, stdin=stdin, stdout=out)
    printed = out.getvalue()
    assert not CONTROL.search(printed), repr(printed[:500])
    assert "Traceback" not in printed


def assert_user_output(result, allowed_codes: set[int]) -> None:
    """An answer on stdout, or exactly one `error:` line on stderr; never a traceback."""
    assert result.exit_code in allowed_codes, (result.exit_code, result.output, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not CONTROL.search(result.stdout), repr(result.stdout[:500])
    assert not CONTROL.search(result.stderr), repr(result.stderr[:500])
    if result.exit_code:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@settings(FAST, max_examples=10)
@given(question=questions)
def test_cli_ask_and_search_print_an_answer_or_one_line(
    cli_embedder: None, awkward_index: Path, question: str
) -> None:
    from bot.cli import cli as bot_cli
    from index.cli import cli as index_cli

    runner = CliRunner()
    asked = runner.invoke(bot_cli, ["ask", "--index", str(awkward_index), "--", question])
    assert_user_output(asked, {0, 1, 2})
    searched = runner.invoke(
        index_cli, ["search", "--index", str(awkward_index), "-k", "3", "--", question]
    )
    assert_user_output(searched, {0, 2})


@FAST
@given(
    text=st.lists(
        st.one_of(
            st.text(max_size=60),
            st.sampled_from(WORDS),
            CONTROLS,
            MENTIONS,
            st.sampled_from([". ", "\n\n", "? ", "Mr. ", "3.5 ", "# ", "---\n", "\r\n"]),
        ),
        max_size=60,
    ).map("".join)
)
def test_chunks_of_any_article_text_are_verbatim(embedder, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "article.txt").write_text(text, encoding="utf-8", errors="surrogatepass")
        loaded = load_articles(folder)
    assert len(loaded.articles) + len(loaded.skipped) == 1
    config = ChunkerConfig(60, 15, embedder.max_seq_length)
    for article in loaded.articles:
        for chunk in chunk_article(article, embedder.tokenizer, config):
            assert article.text[chunk.start : chunk.end] == chunk.text
    for skipped in loaded.skipped:
        assert not CONTROL.search(skipped_line(skipped))


@settings(FAST, max_examples=3)
@given(
    sentences=st.lists(
        st.lists(st.one_of(st.sampled_from(WORDS), CONTROLS, MENTIONS), min_size=3, max_size=12)
        .map(" ".join)
        .map(lambda s: s + "."),
        min_size=1,
        max_size=6,
    )
)
def test_answers_over_any_article_quote_the_stored_text(embedder, sentences: list[str]) -> None:
    """End to end over generated articles: rebuild, ask with the article's own words."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "articles").mkdir()
        (root / "articles" / "generated.txt").write_text(
            "Generated article\n" + " ".join(sentences), encoding="utf-8"
        )
        config = Settings(articles_dir=root / "articles", index_dir=root / "index")
        rebuild(config, lambda: embedder)
        stored = open_current(config.index_dir)
        try:
            texts = {a.id: stored.article_text(a.id) or "" for a in stored.articles()}
        finally:
            stored.close()
        check_question(QAService(config, embedder=embedder), texts, sentences[0])


file_names = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=40,
    ).map(lambda s: s + ".txt"),
    st.binary(min_size=1, max_size=40)
    .filter(lambda b: b"/" not in b and b"\x00" not in b)
    .map(lambda b: os.fsdecode(b + b".txt")),  # not UTF-8: surrogate escapes
    st.lists(CONTROLS.filter(lambda c: c not in "\x00\n"), min_size=1, max_size=4).map(
        lambda parts: "news" + "".join(parts) + ".md"
    ),
)


@FAST
@given(name=file_names)
def test_any_file_name_loads_or_is_reported_printably(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            (folder / name).write_text("A title\nSome text about the harbour.", encoding="utf-8")
        except OSError:  # the file system refuses the name (too long in bytes, say)
            return
        loaded = load_articles(folder)
    if name.startswith("."):  # hidden files are not articles
        assert not loaded.articles and not loaded.skipped
        return
    assert len(loaded.articles) + len(loaded.skipped) == 1, loaded
    for article in loaded.articles:
        for shown in (article.title, printable(article.path), printable(article.id)):
            assert not CONTROL.search(shown)
        "".join((article.path, article.id)).encode("utf-8")  # storable as UTF-8 (SQLite)
    for skipped in loaded.skipped:
        line = skipped_line(skipped)
        assert not CONTROL.search(line) and "\n" not in line
        line.encode("utf-8")
