"""Plumbing both CLIs share (`python -m index`, `python -m bot`): one-line errors, settings
loading and logging set-up.

The promise to the person at the keyboard is one `error: ...` line with a hint and a
non-zero exit code, never a traceback, whatever fails: a bad setting, an undecodable
`.env`, a damaged or unwritable index, a full disk. Every such line passes through
`one_line`, which also masks secrets and strips terminal control sequences. It lives in
`index/` because `index` never imports `bot`; the bot's CLI adds its own safe errors.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NoReturn, TypeVar

import click
from pydantic import SecretStr, ValidationError

from .display import printable
from .errors import IndexError_
from .models import Skipped
from .redact import RedactingFormatter, redact_text, register_secret
from .settings import IndexSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=IndexSettings)

USAGE_EXIT = 2


def one_line(message: str) -> str:
    """`message` as one printable line: lines joined, secrets masked, control codes gone."""
    parts = [part.strip() for part in str(message).splitlines() if part.strip()]
    return printable(redact_text("; ".join(parts)))


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def _name(filename: object) -> str:
    if filename is None:
        return ""
    return os.fsdecode(filename) if isinstance(filename, str | bytes) else str(filename)


def skipped_line(skipped: Skipped) -> str:
    """The report line of a file (or record) the rebuild skipped, safe for a terminal."""
    where = f"{skipped.path}:{skipped.line}" if skipped.line else skipped.path
    return one_line(f"skipped {where}: {skipped.reason}")


_EDQUOT = getattr(errno, "EDQUOT", errno.ENOSPC)
_HINTS = {
    errno.ENOSPC: "free some space and run it again",
    _EDQUOT: "free some space and run it again",
    errno.EROFS: "point INDEX_DIR (or --index) at a writable folder",
    errno.EACCES: "check that this user may read it (and, to rebuild, write the index folder)",
    errno.EPERM: "check that this user may read it (and, to rebuild, write the index folder)",
    errno.ENOTDIR: "check INDEX_DIR, ARTICLES_DIR and the paths given on the command line",
}


def os_error_hint(exc: BaseException | None) -> str | None:
    """What to do about an OS-level failure, when there is something to do."""
    return _HINTS.get(exc.errno) if isinstance(exc, OSError) and exc.errno else None


def describe_os_error(exc: OSError) -> str:
    """What went wrong with which file, and what to do about it, in one sentence."""
    where = _name(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {_name(exc.filename2)}"
    code = exc.errno
    if code in (errno.ENOSPC, _EDQUOT):
        what = "no space left on the disk" + (f" writing {where}" if where else "")
    elif code == errno.EROFS:
        what = f"{where or 'the folder'} is on a read-only file system"
    elif code in (errno.EACCES, errno.EPERM):
        what = "permission denied" + (f": {where}" if where else "")
    elif code == errno.ENOTDIR:
        what = f"{where}: part of this path is a file, not a folder"
    elif code == errno.EISDIR:
        what = f"{where} is a folder where a file was expected"
    elif code == errno.EEXIST:
        what = f"{where} already exists and is not a folder that can be used"
    elif code == errno.ENOENT:
        what = f"{where or 'a file'} does not exist"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
        what = f"{reason}: {where}" if where else reason
    hint = os_error_hint(exc)
    return f"{what}: {hint}" if hint else what


def describe_safe_error(exc: Exception) -> str:
    """A user-facing error's own message, plus the hint of the OS failure behind it if any."""
    message = str(exc)
    hint = os_error_hint(exc.__cause__ or exc.__context__)
    if hint and hint not in message:
        message = f"{message} ({hint})"
    return message


def render_validation_error(exc: ValidationError) -> str:
    """One line naming each bad setting, as the environment spells it (never its value)."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(parts)


def _env_files(cls: type[IndexSettings]) -> list[Path]:
    files = cls.model_config.get("env_file")
    if files is None:
        return []
    if isinstance(files, str | os.PathLike):
        return [Path(files)]
    return [Path(f) for f in files]


def _undecodable_env_line(cls: type[IndexSettings]) -> str:
    """Name the settings file and the first line that is not UTF-8."""
    for path in _env_files(cls):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for number, raw in enumerate(data.split(b"\n"), 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"{path} is not valid UTF-8 (line {number}): save it as UTF-8"
    return "a settings file (.env) is not valid UTF-8: save it as UTF-8"


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build the settings from the environment, `.env` and the command line's overrides.

    Overrides go through validation like any other value. Secret values are registered for
    redaction, so no log line or error can print them afterwards.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = cls(**given)
    except ValidationError as exc:
        raise CLIError(render_validation_error(exc), USAGE_EXIT) from None
    except UnicodeDecodeError:
        raise CLIError(_undecodable_env_line(cls), USAGE_EXIT) from None
    except OSError as exc:
        raise CLIError(f"cannot read the settings: {describe_os_error(exc)}", USAGE_EXIT) from None
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
    return settings


class CLIError(click.ClickException):
    """A failure the command itself diagnosed; shown as one line with its exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Interrupted(Exception):
    """Ctrl-C inside a command (click would otherwise report it as "aborted")."""


class OneLineErrors(click.Group):
    """A click group where every failure, expected or not, ends as one `error:` line.

    `safe_errors` are exceptions whose message is written for users; anything else that is
    not an `OSError` is a bug, reported in one line (its traceback goes to the debug log,
    `-vv`).
    """

    safe_errors: ClassVar[tuple[type[Exception], ...]] = (IndexError_,)

    def invoke(self, ctx: click.Context) -> Any:
        # Click turns EOFError (an empty file read by numpy, say) and Ctrl-C into "Aborted!"
        # after printing a blank line; keep them apart and one line each.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None
        except EOFError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise CLIError(f"a file ended early{detail}: it is truncated or empty") from exc

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("aborted", 130)
        except (_Interrupted, KeyboardInterrupt):
            fail("interrupted", 130)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            fail(f"{exc.format_message()}{hint}", USAGE_EXIT)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except self.safe_errors as exc:
            fail(describe_safe_error(exc))
        except OSError as exc:
            fail(describe_os_error(exc))
        except Exception as exc:
            log.debug("unexpected failure", exc_info=True)
            fail(
                f"unexpected {type(exc).__name__}: {exc} (a bug; run again with -vv for the "
                "details and report it)"
            )
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


class TerminalLogFormatter(RedactingFormatter):
    """Log lines with secrets masked and no control sequences from file names or articles."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(printable(line) for line in super().format(record).split("\n"))


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalLogFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def read_lines(stream: BinaryIO, keep_blank: bool = False) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line (blank ones only with `keep_blank`); text is None
    where it is not UTF-8.

    Batch files are decoded a line at a time so that one bad byte costs one line, not the
    whole batch.
    """
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None
            continue
        text = text.removeprefix("\ufeff") if number == 1 else text
        if keep_blank or text.strip():
            yield number, text.rstrip("\r\n")
