"""Obtaining upstream bytes: from a mirror folder or from the publisher over HTTP.

Both return a `Fetched` record; parsers never know where the bytes came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from regime.sources.errors import SourceError, SourceMissing

log = logging.getLogger(__name__)

USER_AGENT = "regime-monitor/0.1 (small-cap regime monitor; daily batch of public end-of-day files)"
RETRY_STATUS = {403, 429, 500, 502, 503, 504}
# retried: no answer, or an answer cut short (a body shorter than announced, a compressed body that does not inflate)
RETRY_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError)
MAX_RETRY_AFTER = 60.0


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


def fetch_mirror(mirror_dir: Path, folder: str, name: str, source: str) -> Fetched:
    path = mirror_dir / folder / name
    if not path.is_file():
        raise SourceMissing(source, str(path), "not in the mirror")
    return Fetched(name=name, location=str(path), data=path.read_bytes(), fetched_at=datetime.now(UTC))


def fetch_http(url: str, name: str, source: str, timeout: float, attempts: int = 4,
               session: requests.Session | None = None) -> Fetched:
    """GET `url` with timeouts, retries with backoff (honouring Retry-After) and an honest User-Agent."""
    http = session or requests.Session()

    @retry(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        reraise=True,
    )
    def _get() -> requests.Response:
        try:
            response = http.get(url, timeout=timeout, headers={"User-Agent": USER_AGENT})
        except RETRY_ERRORS as exc:
            log.warning("%s: %s: %s, retrying", source, url, exc.__class__.__name__)
            raise _Retryable(f"{exc.__class__.__name__}: {exc}") from exc
        except requests.RequestException as exc:  # not worth retrying: a redirect loop, a malformed URL, ...
            raise SourceError(source, url, f"{exc.__class__.__name__}: {exc}") from exc
        if response.status_code in RETRY_STATUS:
            log.warning("%s: %s: HTTP %s, retrying", source, url, response.status_code)
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        return response

    try:
        response = _get()
    except _Retryable as exc:
        raise SourceError(source, url, f"gave up after {attempts} attempts: {exc}") from exc
    if response.status_code == 404:
        raise SourceMissing(source, url, "HTTP 404 not found" + _excerpt(response))
    if response.status_code != 200:
        raise SourceError(source, url, f"HTTP {response.status_code}" + _excerpt(response))
    return Fetched(name=name, location=url, data=response.content, fetched_at=datetime.now(UTC))


def _excerpt(response: requests.Response, limit: int = 160) -> str:
    """': <the start of the body>' as one line of text (what an error answer says, e.g. Yahoo's "No data found,
    symbol may be delisted"), or '' for an empty or HTML body."""
    data = response.content[:4096]
    if not data.strip() or looks_like_html(data):
        return ""
    text = " ".join(data.decode("utf-8", errors="replace").split())
    return ": " + (text[:limit] + "..." if len(text) > limit else text)


def looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head
