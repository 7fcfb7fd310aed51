"""Obtaining upstream bytes: from a mirror folder or from the publisher over HTTP.

Both return a `Fetched` record; parsers never know where the bytes came from. The checks every parser shares are
here too: `text_of` (the bytes as text), `in_date_order` and `refuse_future` (the dates of its rows).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from regime.config import max_file_bytes
from regime.sources.errors import FileTooLarge, SourceError, SourceMissing, SourceRefused, excerpt

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

USER_AGENT = "regime-monitor/0.1 (small-cap regime monitor; daily batch of public end-of-day files)"
RETRY_STATUS = {403, 429, 500, 502, 503, 504}
# retried: no answer, or an answer cut short (a body shorter than announced, a compressed body that does not inflate)
RETRY_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError)
MAX_RETRY_AFTER = 60.0
CHUNK = 64 * 1024  # bytes read at a time from a streamed body
ERROR_BODY = 4096  # bytes read of an error answer's body, for its excerpt
ERROR_EXCERPT_CHARS = 160  # an upstream's own error text (e.g. a JSON error wrapper) is quoted up to this


@dataclass(frozen=True)
class Fetched:
    name: str  # file name as published, e.g. RUT_History.csv
    location: str  # URL or mirror path
    data: bytes
    fetched_at: datetime


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _wait(retry_state) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, _Retryable) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER)
    return wait_exponential(multiplier=0.5, max=20)(retry_state)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def fetch_mirror(mirror_dir: Path, folder: str, name: str, source: str, max_bytes: int | None = None) -> Fetched:
    """Read `folder/name` from the mirror. Absent: SourceMissing (skipped with a warning by the ingest). Refused
    unread (SourceRefused): a path that resolves outside the mirror (a symbolic link or '..' out of it), a broken
    or looping link, anything but a regular file, a file over `max_bytes` (default: the source's MAX_FILE_MB). A
    symbolic link that stays inside the mirror is followed."""
    limit = max_bytes if max_bytes is not None else max_file_bytes(source)
    relative = f"{folder}/{name}"
    path = mirror_dir / folder / name
    if not os.path.lexists(path):
        raise SourceMissing(source, str(path), "not in the mirror")
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise SourceRefused(source, str(path), f"{relative} is a broken symbolic link (it leads to "
                                               f"{excerpt(os.readlink(path) if path.is_symlink() else '?')}, "
                                               "which does not exist): not read") from None
    except (OSError, RuntimeError) as exc:  # a link loop (ELOOP; RuntimeError before Python 3.13)
        raise SourceRefused(source, str(path), f"{relative} cannot be resolved ({excerpt(str(exc))}): "
                                               "not read") from None
    if not resolved.is_relative_to(mirror_dir.resolve()):
        raise SourceRefused(source, str(path), f"{relative} leads outside the mirror (to {excerpt(str(resolved))}; "
                                               "a symbolic link or '..' out of it): refused, not read")
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        mode = os.stat(resolved, follow_symlinks=False).st_mode if os.path.lexists(resolved) else 0
        problem = f"is {_kind(mode)}" if mode and not stat.S_ISREG(mode) else f"cannot be opened ({exc.strerror})"
        raise SourceRefused(source, str(path), f"{relative} {problem}: not read") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceRefused(source, str(path), f"{relative} is {_kind(info.st_mode)}, not a file: not read")
        if info.st_size > limit:
            raise FileTooLarge(source, str(path), info.st_size, limit, "its size in the mirror")
        handle, fd = os.fdopen(fd, "rb"), -1
        with handle:
            data = handle.read(limit + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:  # it grew after the size was checked
        raise FileTooLarge(source, str(path), None, limit, "it grew while being read")
    return Fetched(name=name, location=str(path), data=data, fetched_at=datetime.now(UTC))


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _read(response: requests.Response, limit: int) -> bytes:
    """The body, decoded (gzip, deflate), read in chunks and abandoned once past `limit` bytes: returns at most
    limit + 1 bytes."""
    chunks, size = [], 0
    for chunk in response.iter_content(CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def fetch_http(url: str, name: str, source: str, timeout: float, attempts: int = 4,
               session: requests.Session | None = None, max_bytes: int | None = None) -> Fetched:
    """GET `url` with timeouts, retries with backoff (honouring Retry-After) and an honest User-Agent.

    A body over `max_bytes` (default: the source's MAX_FILE_MB) is refused, not retried: at once when the
    Content-Length says so, else as soon as the streamed body passes the limit (FileTooLarge)."""
    http = session or requests.Session()
    limit = max_bytes if max_bytes is not None else max_file_bytes(source)

    @retry(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        reraise=True,
    )
    def _get() -> tuple[int, bytes]:
        try:
            with http.get(url, timeout=timeout, headers={"User-Agent": USER_AGENT}, stream=True) as response:
                if response.status_code in RETRY_STATUS:
                    log.warning("%s: %s: HTTP %s, retrying", source, url, response.status_code)
                    raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
                if response.status_code != 200:
                    return response.status_code, _read(response, ERROR_BODY)
                announced = _content_length(response)
                if announced is not None and announced > limit:
                    raise FileTooLarge(source, url, announced, limit, "its Content-Length")
                data = _read(response, limit)
        except RETRY_ERRORS as exc:
            log.warning("%s: %s: %s, retrying", source, url, exc.__class__.__name__)
            raise _Retryable(f"{exc.__class__.__name__}: {exc}") from exc
        except requests.RequestException as exc:  # not worth retrying: a redirect loop, a malformed URL, ...
            raise SourceError(source, url, f"{exc.__class__.__name__}: {exc}") from exc
        if len(data) > limit:
            raise FileTooLarge(source, url, None, limit, "no Content-Length; stopped reading past the limit")
        return 200, data

    try:
        status, data = _get()
    except _Retryable as exc:
        raise SourceError(source, url, f"gave up after {attempts} attempts: {exc}") from exc
    if status == 404:
        raise SourceMissing(source, url, "HTTP 404 not found" + _said(data))
    if status != 200:
        raise SourceError(source, url, f"HTTP {status}" + _said(data))
    return Fetched(name=name, location=url, data=data, fetched_at=datetime.now(UTC))


def _said(data: bytes, limit: int = ERROR_EXCERPT_CHARS) -> str:
    """': <the start of the body>' as one short sanitised line of text (what an error answer says, e.g. Yahoo's
    "No data found, symbol may be delisted"), or '' for an empty or HTML body."""
    if not data.strip() or looks_like_html(data):
        return ""
    return ": " + excerpt(data, limit)


def looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head


def text_of(data: bytes, fail, expected: str, encoding: str = "utf-8-sig") -> str:
    """The text of an upstream file after the checks every text parser makes first: not empty, not an HTML page
    (`expected` names what it should have been, e.g. "a CSV file"), valid UTF-8. `fail(problem)` makes the error."""
    if not data.strip():
        raise fail("empty file")
    if looks_like_html(data):
        raise fail(f"an HTML page, not {expected}")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def refuse_future(last: date, fail, today: date | None = None, what: str = "date") -> None:
    """Refuse a file whose latest date `last` is after `today` (default: the machine's date): `fail(problem)` makes
    the error, naming the date as `what`."""
    limit = today or date.today()
    if last > limit:
        raise fail(f"{what} {last.isoformat()} is in the future (today is {limit.isoformat()})")


def in_date_order(frame: pd.DataFrame, fail, today: date | None = None, column: str = "date") -> pd.DataFrame:
    """A parsed frame whose dates are distinct, sorted by them (if it is not already) with a fresh index; its last
    date must not be in the future (refuse_future)."""
    if not frame[column].is_monotonic_increasing:
        frame = frame.sort_values(column)
    frame = frame.reset_index(drop=True)
    refuse_future(frame[column].iloc[-1], fail, today)
    return frame
