"""Cleaning and checking a question before any model sees it."""

from __future__ import annotations

import re
import unicodedata

from .errors import BadQuestion

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def clean_question(raw: object, max_length: int) -> str:
    """The question as one tidy line, or BadQuestion with a message that says what to do."""
    if not isinstance(raw, str):
        raise BadQuestion("Please ask your question as text.")
    text = unicodedata.normalize("NFC", raw)
    text = _ANSI.sub(" ", text)  # terminal colour codes pasted along with the text
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.split())
    if not text:
        raise BadQuestion("Please type a question, for example: what did Obama say to Putin?")
    if len(text) > max_length:
        raise BadQuestion(
            f"That question is {len(text):,} characters long; please keep it under "
            f"{max_length:,} characters."
        )
    if not any(ch.isalnum() for ch in text):
        raise BadQuestion("Please ask a question with some words in it.")
    return text
