"""The terminal chat: the same answers as Discord, for a local demo or an operator's check.

Everything it prints goes through `index.display.printable`: answers quote articles, titles
and file names come from whoever wrote the files, and a piped question is echoed back, so
any of them could carry escape sequences that clear the screen or retitle the window.

A few words are commands rather than questions: `quit`, `exit`, `:q`, `/quit` and `/exit`
end the chat (as do end of input and Ctrl-C), `/help` lists them. Any other single word
starting with `/` is reported as an unknown command instead of being answered, which keeps
`/`-words free for commands to come.

The chat is one conversation: a follow-up ("why?", "when was that?") is read with the
earlier questions and answers in mind (`bot/followups.py`), and `/new` starts afresh. With
an LLM the model's words are printed as they arrive, then the validated answer with its
sources; when validation rejects the streamed text, the chat says so and prints the
extractive answer instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import textwrap
import uuid
from typing import TextIO

from index.display import printable

from ..errors import SAFE_ERRORS
from ..formatting import answer_text
from ..models import Answer
from ..service import QAService

log = logging.getLogger(__name__)

PROMPT = "question> "
QUIT_COMMANDS = frozenset({"quit", "exit", ":q", "/quit", "/exit"})
HELP_COMMANDS = frozenset({"/help", "/?"})
NEW_COMMANDS = frozenset({"/new", "/forget", "/reset"})
NEW_TEXT = "Starting a new conversation: the next question is read on its own."
_COMMAND = re.compile(r"/[A-Za-z?][\w-]*")  # one word: "/etc/passwd, what is it?" is a question
HELP = (
    "Type a question about the articles and press Enter; each answer lists the passages it "
    'quotes. Follow-up questions ("why?", "when was that?") continue the conversation.'
    "\nCommands: /new starts a new conversation; quit (or exit, :q, /quit, /exit, Ctrl-D, "
    "Ctrl-C) ends the chat; /help shows this."
)


def chat(service: QAService, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Answer each line of input until `quit`, end of input or Ctrl-C; returns how many.

    Interactive when stdin is a terminal (prompt, readline editing, an empty line quits);
    otherwise it reads questions line by line, echoing each after the prompt, so
    `echo question | python -m bot` works in scripts.
    """
    interactive = stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # not on every platform
            import readline  # noqa: F401 - line editing and history for input()
        stdout.write("Ask about the articles. Type quit, an empty line or Ctrl-D to leave.\n")
    answered = 0
    conversation = _new_conversation()
    while True:
        try:
            line = input(PROMPT) if interactive else stdin.readline()
        except (EOFError, KeyboardInterrupt):
            stdout.write("\n")
            break
        if not interactive and line == "":
            break
        question = line.strip()
        if not question:
            if interactive:
                break
            continue
        if not interactive:
            stdout.write(printable(f"{PROMPT}{question}") + "\n")
        command = question.casefold()
        if command in QUIT_COMMANDS:
            break
        if _COMMAND.fullmatch(question):
            if command in HELP_COMMANDS:
                stdout.write(HELP + "\n\n")
            elif command in NEW_COMMANDS:
                forget = getattr(getattr(service, "conversations", None), "forget", None)
                if forget is not None:
                    forget(conversation)
                conversation = _new_conversation()
                stdout.write(NEW_TEXT + "\n\n")
            else:
                stdout.write(printable(f"Unknown command {question}. {HELP}") + "\n\n")
            stdout.flush()
            continue
        try:
            answer = _answer(service, question, conversation, stdout)
        except KeyboardInterrupt:  # Ctrl-C while answering: leave, as at the prompt
            stdout.write("\n")
            break
        except SAFE_ERRORS as exc:
            stdout.write(printable(str(exc)) + "\n\n")
            continue
        except Exception as exc:  # a bug: one log line, the traceback only at debug level
            log.error("failed to answer a question: %s: %s", type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)
            stdout.write("Sorry, something went wrong answering that; see the log.\n\n")
            continue
        text = answer_text(answer)  # printable already
        if interactive:
            text = _wrap(text, shutil.get_terminal_size().columns)
        stdout.write(text + "\n\n")
        stdout.flush()
        answered += 1
    stdout.flush()
    return answered


def _new_conversation() -> str:
    return f"terminal:{uuid.uuid4().hex}"


def _answer(service: QAService, question: str, conversation: str, stdout: TextIO) -> Answer:
    """The final answer; an LLM's text is printed as it streams, before it.

    The streamed words are shown as they come (printable, no control sequences) and the
    validated answer with its sources follows; when validation rejected the streamed text,
    a line says so before the answer actually given.
    """
    streamed = False
    for item in service.answer_stream(question, conversation):
        if isinstance(item, str):
            stdout.write(printable(item))
            stdout.flush()
            streamed = True
            continue
        if streamed:
            stdout.write("\n\n")
            if item.answerer != "llm":
                stdout.write("(That text could not be checked against the sources; the "
                             "quoted answer instead:)\n")  # fmt: skip
        return item
    raise RuntimeError("the answer stream ended without an answer")


def _wrap(text: str, columns: int) -> str:
    """Wrap at word boundaries for the terminal, keeping each line's indent."""
    width = max(40, columns - 1)
    out = []
    for line in text.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        out.append(
            textwrap.fill(
                line,
                width,
                subsequent_indent=indent + ("  " if indent else ""),
                break_long_words=False,
                break_on_hyphens=False,
            )
            if line
            else ""
        )
    return "\n".join(out)
