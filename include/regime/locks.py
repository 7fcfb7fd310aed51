"""Exclusive locks between processes (fcntl.flock on a file under state/): one writer of the warehouse and
one ingest per dataset at a time. A second run waits, saying who holds the lock, then fails clearly."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class LockTimeout(RuntimeError):
    pass


@contextlib.contextmanager
def exclusive(path: Path, what: str, timeout: float = 1800.0, poll: float = 1.0) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        waited = 0.0
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if waited >= timeout:
                    raise LockTimeout(f"{what}: still locked by {holder} after {timeout:.0f}s ({path})") from None
                if waited == 0:
                    log.warning("%s is locked by %s; waiting up to %.0fs", what, holder, timeout)
                time.sleep(poll)
                waited += poll
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
