"""`printable`: nothing that steers a terminal is printed; everything else is kept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.display import REPLACEMENT, printable

# What must never reach a terminal: C0 controls but tab and line feed, DEL, C1 controls,
# bidi embeddings/overrides/isolates, lone surrogates.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[2Jb", "ab"),  # clear screen
        ("a\x1b[1;31mred\x1b[0m", "ared"),  # colours
        ("\x1b[?1049h\x1b[H", ""),  # alternate screen, cursor home
        ("\x1b]0;pwned\x07title", "title"),  # window title, ended by BEL
        ("\x1b]2;pwned\x1b\\title", "title"),  # ... ended by ST
        ("\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # hyperlink
        ("\x1b]52;c;cm0gLXJmIH4=\x07x", "x"),  # clipboard write
        ("\x1bP1$r\x1b\\after", "after"),  # DCS
        ("\x1b_apc\x1b\\x", "x"),  # APC
        ("\x1bcreset", "reset"),  # full reset (RIS)
        ("\x1b(0lqk", "lqk"),  # line-drawing charset
        ("\x1b7\x1b8x", "x"),  # save/restore cursor
        ("lone\x1b", "lone"),
        ("\x1b]0;no end", "0;no end"),  # unterminated: only the introducer goes
        ("x\x9b2Jy", "xy"),  # 8-bit CSI
        ("x\x9d0;t\x9cy", "xy"),  # 8-bit OSC ... ST
        ("x\x85\x8dy", "xy"),  # other C1
        ("safe\rEVIL", "safe\nEVIL"),  # a carriage return cannot overwrite
        ("crlf\r\nline", "crlf\nline"),
        ("bell\x07 nul\x00 bs\x08 del\x7f", "bell nul bs del"),
        ("invoice_\u202efdp.exe", "invoice_fdp.exe"),  # right-to-left override
        ("\u2066a\u2067b\u2068c\u2069 \u202ad\u202be\u202c", "abc de"),
        ("bad\udcffname.txt", f"bad{REPLACEMENT}name.txt"),  # a non-UTF-8 file name
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("[2J is text without ESC", "[2J is text without ESC"),
        ("Ünïcödé 東京 مرحبا \u200f 🎉 \u00a0", "Ünïcödé 東京 مرحبا \u200f 🎉 \u00a0"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_nothing_that_steers_a_terminal_survives(text: str) -> None:
    out = printable(text)
    assert not FORBIDDEN.search(out)
    assert printable(out) == out
    out.encode("utf-8")  # never raises: printable to any UTF-8 terminal


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cs"))))
def test_text_without_controls_is_unchanged(text: str) -> None:
    bidi = re.compile("[\u202a-\u202e\u2066-\u2069]")
    assert printable(text) == bidi.sub("", text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", " ", "\n", "\x1b", "[", "]", "0", ";", "\x07", "\\", "\x9b", "P"]),
        max_size=60,
    ).map("".join)
)
def test_escape_fragments_never_survive(text: str) -> None:
    assert "\x1b" not in printable(text) and "\x9b" not in printable(text)
