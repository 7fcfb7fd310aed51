"""Publishing a finished build: the atomic swap of `warehouse.duckdb`, the spare it keeps of the file it replaced, the
sweep of builds a killed run left behind, and whether another process has a DuckDB file open.

Analysts only ever open the published file, read-only. A build writes a new file under build/; only a validated
build replaces `warehouse.duckdb` (os.replace: readers see the old or the new file, never a mix). The replaced file
stays as the spare (a hard link, no copy), which the next update may take instead of copying the published file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from regime.config import Settings
from regime.sql import WarehouseError, connect

log = logging.getLogger(__name__)


def spare_path(settings: Settings) -> Path:
    """Where publish() keeps the file it replaced (a hard link: no copy), for the next update to start from."""
    return settings.build_dir / "spare.duckdb"


def discard(staging: Path) -> None:
    """Remove a staging build and its write-ahead log."""
    for path in (staging, staging.with_name(staging.name + ".wal")):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_connection(staging: Path, memory_limit: str | None = None):
    """A read-write connection to the staging build `staging`, closed at the end; if opening it or anything in the
    block fails, the build is discarded too: nothing half-built is left to publish."""
    try:
        con = connect(staging, memory_limit=memory_limit)
    except Exception:
        discard(staging)
        raise
    try:
        yield con
    except Exception:
        con.close()
        discard(staging)
        raise
    con.close()


def publish(settings: Settings, staging: Path) -> Path:
    """Atomically replace the published warehouse with a finished staging file."""
    if not staging.exists():
        raise WarehouseError(f"nothing to publish: {staging} does not exist")
    if staging.with_name(staging.name + ".wal").exists():
        raise WarehouseError(f"{staging} has a pending write-ahead log; it was not closed cleanly")
    target = settings.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _keep_spare(settings, target)
    os.replace(staging, target)
    log.info("published %s", target)
    return target


def _keep_spare(settings: Settings, published: Path) -> None:
    """Hard-link the published file as spare_path() before it is replaced (readers that have it open keep reading
    it; an update does not take a spare that is open). Where links are not possible, there is no spare: the next
    update copies."""
    from regime import lake

    spare = spare_path(settings)
    spare.parent.mkdir(parents=True, exist_ok=True)
    try:
        with lake.atomic_path(spare) as link:
            link.unlink()
            os.link(published, link)
    except OSError as exc:
        spare.unlink(missing_ok=True)
        log.warning("no spare of %s kept (%s): the next update copies it", published, exc)


def in_use(path: Path) -> bool:
    """Whether another process has the DuckDB file open (DuckDB holds a lock on it, shared when read-only; a POSIX
    lock is per process, so this process's own connections do not count, and it must not have the file open: closing
    the descriptor here would release DuckDB's lock)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def sweep_builds(settings: Settings) -> list[Path]:
    """Remove the staging builds (`build/warehouse-*.duckdb`, their `.wal` and `.tmp/` spill folders) and temporary
    files that a killed or crashed run left behind; return what was removed. Call it holding `state/warehouse.lock` (as
    pipeline.build_validate_publish does): then no other build is running. A file some process still has open in
    DuckDB (which locks it) is kept all the same."""
    from regime import lake

    removed: list[Path] = []
    if not settings.build_dir.is_dir():
        return removed
    for path in sorted(settings.build_dir.glob("warehouse-*.duckdb*")):
        spill = path.name.endswith(".duckdb.tmp") and path.is_dir()  # where DuckDB spills beyond its memory limit
        if not spill and (not path.name.endswith((".duckdb", ".duckdb.wal")) or not path.is_file()):
            continue
        database = path.with_name(path.name.removesuffix(".wal").removesuffix(".tmp"))
        if database.exists() and in_use(database):
            continue
        if spill:
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("removed %d abandoned staging file(s), e.g. %s", len(removed), removed[0])
    return removed + lake.sweep_temp(settings.build_dir)
