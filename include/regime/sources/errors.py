"""Errors raised while obtaining or parsing upstream data.

Error messages travel to logs, the quarantine's .error.txt files and the operators' failure mail, so what they
quote of an upstream file is kept short and harmless: `excerpt` makes unknown bytes safe to quote, and every
SourceError bounds its problem text (no control characters, no run of more than RUN_CHARS characters without a
space, at most PROBLEM_CHARS characters), whichever parser wrote it.
"""

from __future__ import annotations

import re

EXCERPT_CHARS = 80  # what an error quotes of unknown bytes, at most
RUN_CHARS = 120  # a longer run without a space in a problem text is cut to EXCERPT_CHARS
PROBLEM_CHARS = 1000  # a problem text is cut beyond this
_RUN = re.compile(rf"\S{{{RUN_CHARS + 1},}}")


def _printable(text: str) -> str:
    """Line ends and tabs as a space; every other control or non-printable character (ESC, NUL, bidi overrides,
    ...) as '?'."""
    return "".join(c if c.isprintable() else " " if c in "\t\n\r" else "?" for c in text)


def excerpt(data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """Unknown bytes made safe to quote in a message: decoded as UTF-8 (undecodable bytes as U+FFFD), on one line,
    control and non-printable characters replaced by '?', at most `limit` characters (then '...')."""
    head = data[: limit * 8]
    text = head.decode("utf-8", errors="replace") if isinstance(head, bytes | bytearray) else str(head)
    text = _printable(" ".join(text.split()))
    cut = len(text) > limit or len(data) > len(head)
    return text[:limit] + "..." if cut else text


def bounded(problem: str) -> str:
    """A problem text fit for a log line and a mail: printable, one line, no overlong run, at most PROBLEM_CHARS."""
    text = _RUN.sub(lambda m: m.group()[:EXCERPT_CHARS] + "...", _printable(problem))
    return text[:PROBLEM_CHARS] + f"... ({len(text) - PROBLEM_CHARS} more characters)" \
        if len(text) > PROBLEM_CHARS else text


class SourceError(Exception):
    """Upstream data could not be obtained or is not what it claims to be.

    The message names the source, the file (URL or path) and the problem (bounded: see `bounded`).
    """

    def __init__(self, source: str, location: str, problem: str):
        self.source = source
        self.location = location
        self.problem = bounded(problem)
        super().__init__(f"{source}: {location}: {self.problem}")


class SourceMissing(SourceError):
    """The file does not exist upstream (or in the mirror)."""


class SourceRefused(SourceError):
    """The file is there but was refused unread: a mirror entry that leads outside the mirror, a broken link, not
    a regular file, or a file over the source's size limit. Never retried; nothing of it is landed."""


class FileTooLarge(SourceRefused):
    """The file is larger than the source's size limit (REGIME_MAX_FILE_MB)."""

    def __init__(self, source: str, location: str, size: int | None, limit: int, how: str):
        self.size = size
        self.limit = limit
        said = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
        super().__init__(source, location, f"{said} ({how}), over the {source} size limit of {limit:,} bytes "
                                           f"({limit / 2**20:g} MiB, REGIME_MAX_FILE_MB): refused, nothing kept")
