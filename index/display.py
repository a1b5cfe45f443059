"""Text from articles and file names made safe to print on a terminal.

Article text, titles and file names come from whoever wrote the files, and a terminal obeys
what it is sent: `ESC [ 2 J` clears the screen, `ESC ] 0 ; … BEL` sets the window title, an
OSC 8 sequence hides a link behind harmless-looking text, a carriage return overwrites what
was printed, and a bidi override (U+202E) shows `txt.exe` as `exe.txt`. `printable` removes
all of that and keeps everything else (ordinary Unicode, line breaks and tabs) as it is.

Written here rather than taken from a library because the ones at hand strip too little:
`click.unstyle` removes only CSI sequences (not OSC titles or hyperlinks, DCS, 8-bit C1 forms
or lone controls) and `rich.control.strip_control_codes` removes five C0 characters. The
sequence grammar is ECMA-48's (control functions, section 5).

It lives in `index/` because both command lines print file names and article text, and
`index/` may not import `bot/`.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# One alternation, scanned left to right, so a sequence is removed whole before its pieces
# could be seen as anything else. The order of the branches matters: the string commands
# (OSC, DCS, SOS, PM, APC) must be tried before the generic two-character escape.
_SEQUENCE = re.compile(
    r"""
      (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])   # OSC, DCS, SOS, PM, APC (7-bit or C1 form)
        [^\x07\x1b\x9c]*                        #   their payload (a title, a hyperlink...)
        (?:\x07|\x1b\\|\x9c)                    #   ended by BEL or ST
    | (?:\x1b\[|\x9b)[0-?]*[\x20-/]*[@-~]?      # CSI: parameters, intermediates, final byte
    | \x1b[\x20-/]*[0-~]?                       # other escapes (ESC c, ESC ( B, ESC 7...) or a
                                                #   lone ESC; a string command with no end
                                                #   loses only its introducer
    """,
    re.VERBOSE,
)

# What is left after the sequences: C0 controls but tab and line feed, DEL, C1 controls,
# the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which can
# make text read differently from what it is, and lone surrogates (from file names that
# were not UTF-8), which cannot be written to a UTF-8 terminal at all.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def printable(text: str) -> str:
    """`text` with terminal control sequences and controls removed, safe to print.

    Line breaks are kept (a carriage return becomes a line break, so text it would have
    overwritten stays visible), tabs are kept, and characters that cannot be encoded (lone
    surrogates) become U+FFFD. Text without controls comes back unchanged.
    """
    if text.isprintable():  # the common case: nothing to remove (no \n, \t either)
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SEQUENCE.sub("", text)
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub(REPLACEMENT, text)
