"""The terminal chat: the same answers as Discord, for a local demo or an operator's check."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import textwrap
from typing import TextIO

from ..errors import SAFE_ERRORS
from ..formatting import answer_text
from ..service import QAService

log = logging.getLogger(__name__)

PROMPT = "question> "


def chat(service: QAService, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Answer each line of input until end of input; returns how many were answered.

    Interactive when stdin is a terminal (prompt, readline editing); otherwise it reads
    questions line by line, so `echo question | python -m bot` works in scripts.
    """
    interactive = stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # not on every platform
            import readline  # noqa: F401 - line editing and history for input()
        stdout.write("Ask about the articles. An empty line or Ctrl-D quits.\n")
    answered = 0
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
        try:
            answer = service.answer(question)
        except SAFE_ERRORS as exc:
            stdout.write(f"{exc}\n\n")
            continue
        except Exception:
            log.exception("failed to answer %r", question)
            stdout.write("Sorry, something went wrong answering that; see the log.\n\n")
            continue
        text = answer_text(answer)
        if interactive:
            text = _wrap(text, shutil.get_terminal_size().columns)
        else:
            stdout.write(f"{PROMPT}{question}\n")
        stdout.write(text + "\n\n")
        stdout.flush()
        answered += 1
    return answered


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
