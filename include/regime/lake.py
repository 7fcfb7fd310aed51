"""The lake on disk: raw bytes as received, canonical Parquet, and quarantine. Every write is atomic.

    raw/<source>/as_of=<date>/<file>             bytes exactly as fetched, plus <file>.meta.json
    quarantine/<source>/as_of=<date>/<file>      bytes that failed to parse, plus <file>.error.txt
    lake/<dataset>/<key>=<value>/data.parquet    canonical typed rows (hive partitions)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Temporary files of atomic writes: `.<name>.<writer pid>.<random>.tmp` beside their target.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
# A partition value becomes one directory name `<key>=<value>`: letters, digits and . _ ^ + -, not leading '.'.
_PARTITION_VALUE = re.compile(r"[A-Za-z0-9^+_-][A-Za-z0-9.^+_-]{0,63}")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target` atomically.

    The temporary file is named `.<target name>.<pid>.<random>.tmp`: if the process is killed before the rename,
    `sweep_temp` can tell the leftover from a write still in progress."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def sweep_temp(*roots: Path) -> list[Path]:
    """Remove the temporary files that killed atomic writers left under `roots` (`.<name>.<pid>.<random>.tmp`
    whose pid is no longer running, and unnamed `.<name>.<random>.tmp` ones of earlier versions); return what was
    removed.

    A killed process cannot clean up after itself, and its leftovers would pile up beside the lake's files.
    Callers sweep only directories they hold the writer's lock for (pipeline.ingest: the dataset's lake folder
    and the source's raw and quarantine folders), so no live writer, here or on another host, can lose a file."""
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob(".*.tmp")):
            match = _TEMP.match(path.name)
            if match and _alive(int(match.group("pid"))):
                continue
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.warning("removed %d temporary file(s) left by a killed writer, e.g. %s", len(removed), removed[0])
    return removed


def write_bytes_atomic(target: Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _partition(root: Path, source: str, as_of: date) -> Path:
    return root / source / f"as_of={as_of.isoformat()}"


def _safe_join(root: Path, name: str) -> Path:
    """`root / name`, refusing names that would leave `root` (absolute paths, `..`)."""
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write {name!r} outside {root}")
    return target


def land_raw(raw_dir: Path, source: str, as_of: date, name: str, data: bytes, location: str,
             fetched_at: datetime | None = None) -> Path:
    """Keep the bytes exactly as received, with where and when they came from and their sha256.

    A rerun for the same as-of date that receives the same bytes leaves the partition as it was.
    """
    target = _safe_join(_partition(raw_dir, source, as_of), name)
    meta_path = target.with_name(target.name + ".meta.json")
    digest = sha256(data)
    if target.exists() and meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("sha256") == digest:
            return target
    meta = {
        "source": source,
        "location": location,
        "fetched_at": (fetched_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "sha256": digest,
        "bytes": len(data),
    }
    write_bytes_atomic(target, data)
    write_bytes_atomic(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    return target


def quarantine(quarantine_dir: Path, source: str, as_of: date, name: str, data: bytes, reason: str) -> Path:
    """Set aside bytes that failed to parse, with the reason beside them."""
    target = _safe_join(_partition(quarantine_dir, source, as_of), name)
    write_bytes_atomic(target, data)
    write_bytes_atomic(target.with_name(target.name + ".error.txt"), (reason + "\n").encode())
    return target


def partition_path(lake_dir: Path, dataset: str, key: str, value: str) -> Path:
    """`lake/<dataset>/<key>=<value>/data.parquet`; a value that is not one plain directory name (a path separator,
    `..`, `=`, a leading dot, control characters) is refused: it comes from configuration or upstream data."""
    if not isinstance(value, str) or not _PARTITION_VALUE.fullmatch(value):
        raise ValueError(f"refusing partition value {value!r} for {dataset}.{key}: expected letters, digits "
                         "and . _ ^ + - only (at most 64, not starting with '.')")
    return lake_dir / dataset / f"{key}={value}" / "data.parquet"


# Each lake partition file carries its write journal in its Parquet key-value metadata (atomic with the rows):
# [{"id": ..., "first_changed": "YYYY-MM-DD" | null}, ...], oldest first, at most JOURNAL_LENGTH entries. `id`
# chains the previous entry's id with a digest of the rows written, so it names one content in one lineage;
# `first_changed` is the earliest point-in-time date (Dataset.time_column) of a row the write added or changed.
# warehouse.update reads it to know which dates changed since the published build without comparing the lake.
JOURNAL_KEY = b"regime.writes"
JOURNAL_LENGTH = 256
ROW_GROUP_ROWS = 8192  # small row groups: a read filtered on recent dates skips the rest of a long history


def read_journal(path: Path) -> list[dict] | None:
    """The write journal of a lake partition file; None for a file written without one (by another tool)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(JOURNAL_KEY)
    if raw is None:
        return None
    try:
        journal = json.loads(raw)
    except ValueError:
        return None
    return journal if isinstance(journal, list) else None


def journal_entry(previous: list[dict] | None, digest: str, first_changed: date | None) -> dict:
    parent = previous[-1]["id"] if previous else ""
    entry_id = hashlib.sha256(f"{parent}\0{digest}".encode()).hexdigest()[:24]
    return {"id": entry_id, "first_changed": first_changed.isoformat() if first_changed else None}


def write_partition(path: Path, frame: pd.DataFrame, journal: list[dict]) -> None:
    """Write a partition file atomically, its journal in the file's metadata, in ROW_GROUP_ROWS row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), JOURNAL_KEY: json.dumps(journal[-JOURNAL_LENGTH:]).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp, row_group_size=ROW_GROUP_ROWS)


def upsert_partition(path: Path, frame: pd.DataFrame, on: list[str], time_column: str | None = None,
                     authoritative: bool = False,
                     before_write: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None) -> int:
    """Merge `frame` into the Parquet file at `path`: new rows win on `on`.

    The lake is the archive: history an upstream stops serving stays here, so old rows are kept, except with
    `authoritative` (a file that carries a series' whole history, docs/reliability.md "Revisions and repair"): then
    an old row whose first key (a date) lies within the dates `frame` covers but which `frame` lacks is dropped. A
    shorter (truncated) file cannot drop anything outside its own date range.

    A write that adds, changes or drops no row leaves the file untouched (a rerun is byte-identical); any other
    calls `before_write(old rows, rows to be written)` first (revisions are recorded before the rows change) and
    appends an entry to the file's journal whose `first_changed` is the earliest `time_column` (default: the first
    key column) among the rows added, changed or dropped, old and new versions. Returns the row count held.
    """
    time_column = time_column or on[0]
    existing = pd.read_parquet(path) if path.exists() else None
    journal = read_journal(path) if existing is not None else []
    old, dropped = existing, None
    if existing is not None and authoritative and len(frame):
        dates = existing[on[0]]
        inside = (dates >= frame[on[0]].min()) & (dates <= frame[on[0]].max())
        lacking = inside.to_numpy() & ~_key_index(existing, on).isin(_key_index(frame, on))
        if lacking.any():
            dropped = existing[lacking]
            old = existing[~lacking].reset_index(drop=True)
    merged = frame if old is None else pd.concat([old, frame], ignore_index=True)
    hashes = pd.util.hash_pandas_object(merged, index=False).to_numpy()
    keep = ~merged.duplicated(subset=on, keep="last").to_numpy()
    kept = merged[keep]
    changed = np.ones(len(kept), dtype=bool)
    if old is not None:
        # a kept row is new or changed unless it is an old row, or a new row equal to the old row of its key
        from_new = np.flatnonzero(keep) >= len(old)
        old_keys = _key_index(old, on)
        if old_keys.is_unique:
            position = old_keys.get_indexer(_key_index(kept, on))
            same = (position >= 0) & (hashes[:len(old)][np.maximum(position, 0)] == hashes[keep])
            changed = from_new & ~same
        else:  # a file with repeated keys (written by another tool): count every new row as changed
            changed = from_new
        if not changed.any() and dropped is None:
            return len(old)  # nothing new: the file, its journal and its bytes stay as they are
    times = list(kept.loc[changed, time_column].dropna())
    if old is not None and time_column not in on:  # a changed row was visible from its old time too
        old_times = old.set_index(on)[time_column]
        times += list(old_times.reindex(_key_index(kept[changed], on)).dropna())
    if dropped is not None:
        times += list(dropped[time_column].dropna())
    first = min((as_date(t) for t in times), default=None)
    digest = hashlib.sha256(hashes[keep].tobytes()).hexdigest()
    rows = kept.sort_values(on).reset_index(drop=True)
    if before_write is not None:
        before_write(existing if existing is not None else frame.iloc[:0], rows)
    write_partition(path, rows, [*(journal or []), journal_entry(journal, digest, first)])
    return len(kept)


# Relative difference below which a number that arrives again is the same number (float formatting, rounding)
REVISION_TOLERANCE = 1e-6


def revisions(old: pd.DataFrame, new: pd.DataFrame, on: list[str],
              tolerance: float = REVISION_TOLERANCE) -> pd.DataFrame:
    """What a write changes in rows that were already there: one row per revised number (`kind` revised: the key
    columns, `field`, `old`, `new`) and one per dropped row (`kind` removed, `field` '*', no numbers). A number is
    revised when both versions are set and differ by more than `tolerance` relative to the larger, or when one of
    them is empty (NULL) and the other is not; rows only added are not revisions."""
    columns = [*on, "field", "kind", "old", "new"]
    if old.empty:
        return pd.DataFrame(columns=columns)
    old_keyed, new_keyed = old.set_index(on), new.set_index(on)
    both = old_keyed.index.intersection(new_keyed.index)
    found = []
    for column in old_keyed.columns:
        if column not in new_keyed.columns or not pd.api.types.is_numeric_dtype(old_keyed[column]):
            continue
        before = old_keyed.loc[both, column].astype(float)
        after = new_keyed.loc[both, column].astype(float)
        scale = np.maximum(before.abs(), after.abs())
        emptied_or_filled = before.isna() != after.isna()
        revised = (before.notna() & after.notna() & ((after - before).abs() > tolerance * scale)) | emptied_or_filled
        if revised.any():
            found.append(pd.DataFrame({"field": column, "kind": "revised", "old": before[revised],
                                       "new": after[revised]}).reset_index())
    gone = old_keyed.index.difference(new_keyed.index)
    if len(gone):
        found.append(pd.DataFrame({"field": "*", "kind": "removed", "old": np.nan, "new": np.nan},
                                  index=gone).reset_index())
    if not found:
        return pd.DataFrame(columns=columns)
    return pd.concat(found, ignore_index=True)[columns].sort_values([*on, "field"]).reset_index(drop=True)


def remove_rows(path: Path, on: list[str], dates: list[date], time_column: str | None = None) -> pd.DataFrame:
    """Rewrite a partition file atomically without the rows whose first key is one of `dates`, journaled like
    a write (`first_changed`: the earliest removed `time_column`); return the rows removed. Raises KeyError naming
    the dates the file does not hold (and changes nothing)."""
    time_column = time_column or on[0]
    existing = pd.read_parquet(path)
    journal = read_journal(path) or []
    held = {as_date(d) for d in existing[on[0]]}
    absent = sorted(d for d in set(dates) if d not in held)
    if absent:
        raise KeyError(f"{path} holds no row for {', '.join(d.isoformat() for d in absent)}")
    hit = existing[on[0]].map(as_date).isin(set(dates)).to_numpy()
    removed, rows = existing[hit], existing[~hit].reset_index(drop=True)
    first = min((as_date(t) for t in removed[time_column].dropna()), default=None)
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
    write_partition(path, rows, [*journal, journal_entry(journal, digest, first)])
    return removed.reset_index(drop=True)


def _key_index(frame: pd.DataFrame, on: list[str]) -> pd.Index:
    return pd.MultiIndex.from_frame(frame[on]) if len(on) > 1 else pd.Index(frame[on[0]])


def as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else pd.Timestamp(value).date()
