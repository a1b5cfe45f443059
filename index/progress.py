"""Progress of long steps (chunking, embedding) for the person or the log watching a rebuild.

On a terminal a bar (tqdm) redraws in place with the rate and the time left; anywhere else
(a cron job's log, a CI console, a pipe) a bar's carriage returns would pile up into one
unreadable line, so plain lines are written instead, each with the same figures: one every
`LINE_SECONDS`, and a closing one. A step done within `LINE_SECONDS` writes no line at all,
so a small rebuild's output (and a failing command's one `error:` line) stays as it was;
`--quiet` shows nothing. Callers advance it once per
batch, so it moves as the work does rather than jumping from 0% to 100%.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

Mode = Literal["auto", "bar", "lines", "off"]
MODES: tuple[Mode, ...] = ("auto", "bar", "lines", "off")
LINE_SECONDS = 10.0


def resolve_mode(mode: Mode | bool, stream: TextIO | None = None) -> Mode:
    """`auto`: a bar on a terminal, lines elsewhere; True means auto, False off."""
    if mode is True:
        mode = "auto"
    elif mode is False:
        mode = "off"
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}: expected one of {MODES}")
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(slots=True)
class ProgressBar:
    """One step's progress; use as a context manager and call `update(n)` per batch."""

    total: int
    desc: str
    unit: str
    mode: Mode = "auto"
    stream: TextIO | None = None
    line_seconds: float = LINE_SECONDS
    clock: Any = time.monotonic
    done: int = 0
    _bar: Any = field(default=None, repr=False)
    _started: float = 0.0
    _last_line: float = 0.0
    _lines: int = 0
    _resolved: Mode = "off"

    def __enter__(self) -> ProgressBar:
        self._resolved = resolve_mode(self.mode, self.stream)
        self._started = self._last_line = self.clock()
        if self._resolved == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc=self.desc, unit=self.unit, file=self.stream or sys.stderr,
                dynamic_ncols=True, smoothing=0.1,
            )  # fmt: skip
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self._resolved == "bar":
            self._bar.update(n)
        elif self._resolved == "lines":
            now = self.clock()
            if now - self._last_line >= self.line_seconds and self.done < self.total:
                self._last_line = now
                self._write_line(now)

    def line(self, now: float | None = None) -> str:
        """The plain line for the progress so far: count, share, rate and time left."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        share = 100 * self.done / self.total if self.total else 100.0
        text = f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s ({share:.0f}%)"
        if self.done:
            text += f", {rate:.1f} {self.unit}s/s"
        if self.done >= self.total:
            return text + f", done in {_duration(elapsed)}"
        if self.done:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        return text

    def _write_line(self, now: float) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.line(now) + "\n")
        stream.flush()
        self._lines += 1

    def __exit__(self, *exc: object) -> None:
        if self._resolved == "bar":
            self._bar.close()
        elif self._resolved == "lines" and self._lines and exc[0] is None:
            self._write_line(self.clock())
