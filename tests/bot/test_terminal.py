"""The terminal chat: commands that end it, clean exits, and nothing raw reaches the terminal."""

from __future__ import annotations

import builtins
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.errors import SAFE_ERRORS
from bot.models import Answer, Citation
from bot.service import QAService
from bot.settings import Settings
from bot.transports.terminal import PROMPT, chat

FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "a\x1b[2J\x1b]0;pwned\x07b \x9b31m \u202eexe.txt \x1b]8;;http://evil.example\x1b\\x"


class ServiceDouble:
    """Answers every question with `make(question)`; remembers what it was asked.

    The chat loop is what is under test here; answering is tested with the real service in
    `test_real_service_over_hostile_articles` and in test_ask.py.
    """

    def __init__(
        self,
        make: Callable[[str], Answer] | None = None,
        pieces: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.asked: list[str] = []
        self.conversation_ids: list[str | None] = []
        self.make = make or (lambda q: Answer(question=q, text=f"answer to {q}", found=False))
        self.pieces = pieces or (lambda q: [])
        self.conversations = self
        self.forgotten: list[str] = []

    def answer_stream(self, question: str, conversation: str | None = None) -> Iterator[object]:
        self.asked.append(question)
        self.conversation_ids.append(conversation)
        yield from self.pieces(question)
        yield self.make(question)

    def forget(self, conversation: str) -> None:
        self.forgotten.append(conversation)


def run(lines: str, service: ServiceDouble) -> tuple[int, str]:
    out = io.StringIO()
    answered = chat(service, stdin=io.StringIO(lines), stdout=out)  # type: ignore[arg-type]
    return answered, out.getvalue()


@pytest.mark.parametrize("word", ["quit", "exit", ":q", "/quit", "/exit", "  QUIT ", "Exit", ":Q"])
def test_quit_words_end_the_chat(word: str) -> None:
    service = ServiceDouble()
    answered, out = run(f"first?\n{word}\nnever asked?\n", service)
    assert service.asked == ["first?"]
    assert answered == 1
    assert "never asked" not in out


def test_a_question_that_merely_contains_quit_is_answered() -> None:
    service = ServiceDouble()
    run("quit smoking: what did the article say?\nhow do I exit the motorway?\n", service)
    assert service.asked == [
        "quit smoking: what did the article say?",
        "how do I exit the motorway?",
    ]


def test_slash_words_are_commands_not_questions() -> None:
    service = ServiceDouble()
    answered, out = run("/help\n/NoSuch\n/etc/passwd, what is it?\n", service)
    assert service.asked == ["/etc/passwd, what is it?"]  # a path in a question is a question
    assert answered == 1
    assert "Commands:" in out and "/new" in out
    assert "Unknown command /NoSuch." in out


def test_one_conversation_per_chat_and_new_starts_afresh() -> None:
    service = ServiceDouble()
    answered, out = run("who?\nwhy?\n/new\nwhen?\n", service)
    assert answered == 3 and service.asked == ["who?", "why?", "when?"]
    first, second, third = service.conversation_ids
    assert first and first == second and third and third != first
    assert service.forgotten == [first]
    assert "new conversation" in out


def test_streamed_text_is_printed_then_the_checked_answer() -> None:
    checked = Answer(question="q?", text="Checked words [1].", found=True, answerer="llm")
    service = ServiceDouble(lambda q: checked, lambda q: ["Streamed ", "\x1b[2Jwords [1]."])
    answered, out = run("q?\n", service)
    assert answered == 1
    assert "Streamed words [1]." in out and "\x1b" not in out
    assert out.index("Streamed") < out.index("Checked words [1].")
    assert "could not be checked" not in out


def test_streamed_text_that_failed_validation_is_said_so() -> None:
    fallback = Answer(question="q?", text="Quoted sentence [1].", found=True)
    service = ServiceDouble(lambda q: fallback, lambda q: ["Unsupported ", "claim [1]."])
    _, out = run("q?\n", service)
    assert out.index("Unsupported claim") < out.index("could not be checked")
    assert out.index("could not be checked") < out.index("Quoted sentence [1].")


def test_end_of_input_ends_cleanly() -> None:
    service = ServiceDouble()
    answered, out = run("one?\n\n   \ntwo?", service)  # blank lines skipped, no final newline
    assert service.asked == ["one?", "two?"]
    assert answered == 2
    assert out.count(PROMPT) == 2


def test_ctrl_c_while_answering_ends_cleanly() -> None:
    def interrupted(question: str) -> Answer:
        if question == "slow?":
            raise KeyboardInterrupt
        return Answer(question=question, text="fine", found=False)

    service = ServiceDouble(interrupted)
    answered, out = run("fast?\nslow?\nnever?\n", service)
    assert service.asked == ["fast?", "slow?"]
    assert answered == 1
    assert out.endswith("\n")


def test_errors_are_one_line_and_the_chat_goes_on() -> None:
    def failing(question: str) -> Answer:
        if question == "safe?":
            raise SAFE_ERRORS[0]("index damaged:\x1b[2J run rebuild")
        if question == "bug?":
            raise RuntimeError("boom")
        return Answer(question=question, text="fine", found=False)

    answered, out = run("safe?\nbug?\nok?\n", ServiceDouble(failing))
    assert answered == 1
    assert "index damaged: run rebuild" in out
    assert "something went wrong" in out and "Traceback" not in out and "boom" not in out
    assert "\x1b" not in out


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt, "quit", ""])
def test_interactive_chat_ends_on_ctrl_d_ctrl_c_quit_or_empty_line(
    monkeypatch: pytest.MonkeyPatch, end: type[BaseException] | str
) -> None:
    inputs: list[str | type[BaseException]] = ["first?", end, "never?"]

    def fake_input(prompt: str = "") -> str:
        item = inputs.pop(0)
        if isinstance(item, type):
            raise item
        return item

    monkeypatch.setattr(builtins, "input", fake_input)
    service = ServiceDouble()
    out = io.StringIO()
    assert chat(service, stdin=Tty(), stdout=out) == 1  # type: ignore[arg-type]
    assert service.asked == ["first?"]
    assert "quit" in out.getvalue().splitlines()[0]  # the banner says how to leave


def test_echoed_questions_and_answers_reach_the_terminal_without_controls() -> None:
    def hostile(question: str) -> Answer:
        cite = Citation(
            n=1, article_id="a", title=HOSTILE, source=f"files/{HOSTILE}.txt", chunk_id="a#0",
            start=0, end=len(HOSTILE), quote=HOSTILE, score=0.5,
        )  # fmt: skip
        return Answer(question=question, text=f"{HOSTILE} [1]", found=True, citations=[cite])

    answered, out = run(f"what is {HOSTILE}?\n", ServiceDouble(hostile))
    assert answered == 1
    assert not FORBIDDEN.search(out.replace("\n", " "))
    assert f"{PROMPT}what is ab " in out  # the echo, without the sequences
    assert "[1] ab" in out and "exe.txt" in out


def test_real_service_over_hostile_articles(tmp_path: Path, embedder) -> None:
    """Escape sequences in an article's title and text, bidi in its name, through the real
    answerer (names with control characters are skipped by the loader)."""
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    articles = tmp_path / "hostile-articles"
    articles.mkdir()
    (articles / "harbour \u202eevil.txt").write_text(
        "Harbour \x1b[2Jlights \u202ereturn\n\n"
        "The harbour lights were switched on again on Monday evening by the mayor, "
        "\x1b]8;;http://evil.example\x1b\\Marta Ilves\x1b]8;;\x1b\\, after repairs.\x1bc\n",
        encoding="utf-8",
    )
    (articles / "orchard.txt").write_text(
        "The orchard\n\nAnyone may pick the fruit from the village orchard in September.\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "hostile-index"
    rebuild(IndexSettings(articles_dir=articles, index_dir=index_dir), lambda: embedder)
    service = QAService(Settings(articles_dir=articles, index_dir=index_dir), embedder=embedder)
    out = io.StringIO()
    questions = "When were the harbour lights switched on again?\nquit\nWho can pick fruit?\n"
    answered = chat(service, stdin=io.StringIO(questions), stdout=out)
    text = out.getvalue()
    assert answered == 1
    assert "Monday" in text
    assert "\x1b" not in text and not FORBIDDEN.search(text.replace("\n", " "))
    assert "Who can pick fruit" not in text
