"""`regime-lake`: look at a lake partition and take rows out of it, when the lake holds rows it should not.

    regime-lake show DATASET PARTITION [--from D] [--to D]
    regime-lake remove DATASET PARTITION --date D [--date D ...] [--rebuild AS_OF]

`remove` rewrites the partition file atomically without the rows of those dates, journals the write (so an
incremental build recomputes from the earliest removed date) and records each removed row in meta.revisions (file
`regime-lake remove`). It refuses while an ingest of the dataset runs. The warehouse still holds the rows until the
next build: `--rebuild AS_OF` rebuilds, validates and publishes it from the lake, or run regime-backfill or the
regime_daily DAG. With the lake in a bucket (REGIME_LAKE_URI), both pull the dataset's partitions from it first and
`remove` pushes the partition it rewrote (regime.lake_store). See docs/operations.md, "Repairing the lake".
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime

import pandas as pd

from regime import datasets, lake, lake_store, state
from regime.config import Settings, get_settings

DATASETS = {d.name: d for d in datasets.ALL}
REMOVED_BY = state.REMOVED_BY


class RepairError(RuntimeError):
    """The command cannot do what was asked; the message says why and nothing was changed."""


def _partition(settings: Settings, name: str, value: str, pull: bool = True):
    """The dataset and its partition file; with REGIME_LAKE_URI and `pull`, the dataset's partitions are pulled from
    the bucket first, under its ingest lock (regime.lake_store)."""
    if name not in DATASETS:
        raise RepairError(f"no dataset {name!r}: one of {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    if settings.lake_uri and pull:
        from regime.locks import exclusive

        with exclusive(settings.state_dir / f"ingest-{name}.lock", f"ingest of {name}"), \
                lake_store.synced(settings, name, push=False):
            pass
    path = dataset.partition_path(settings.lake_dir, value)
    if not path.exists():
        held = sorted(p.parent.name.split("=", 1)[1] for p in (settings.lake_dir / name).glob("*/data.parquet"))
        raise RepairError(f"the lake holds no {name} partition {value!r} (it holds: {', '.join(held) or 'none'})")
    return dataset, path


def show(settings: Settings, name: str, value: str, start: date | None = None, end: date | None = None) -> str:
    """The partition's rows between `start` and `end` (first key column), with its row count and last write."""
    dataset, path = _partition(settings, name, value)
    rows = pd.read_parquet(path)
    first = dataset.key[0]
    when = rows[first].map(lake.as_date)
    chosen = rows[(when >= (start or date.min)) & (when <= (end or date.max))]
    journal = lake.read_journal(path) or []
    last = journal[-1] if journal else {}
    lines = [f"{path}: {len(rows)} rows, {len(journal)} journaled writes, last {last.get('id', '-')} "
             f"(first changed {last.get('first_changed') or '-'})",
             chosen.to_string(index=False) if len(chosen) else "(no rows in that range)"]
    return "\n".join(lines)


def remove(settings: Settings, name: str, value: str, dates: list[date]) -> pd.DataFrame:
    """Take the rows of `dates` out of one partition (all of them or none); return the rows removed."""
    from regime.locks import LockTimeout, exclusive

    if not settings.lake_uri:  # a bucket's partition is checked once pulled, below
        _partition(settings, name, value)
    try:
        # with REGIME_LAKE_URI: the dataset's partitions pulled from the bucket, and the rewritten one pushed back
        with exclusive(settings.state_dir / f"ingest-{name}.lock", f"ingest of {name}", timeout=0), \
                lake_store.synced(settings, name):
            dataset, path = _partition(settings, name, value, pull=False)
            rows = pd.read_parquet(path)
            first = dataset.key[0]
            held = set(rows[first].map(lake.as_date))
            absent = sorted(set(dates) - held)
            if absent:
                raise RepairError(f"{name} {value} holds no row for {', '.join(d.isoformat() for d in absent)}; "
                                  "nothing was removed")
            doomed = rows[rows[first].map(lake.as_date).isin(set(dates))]
            changes = pd.DataFrame({first: doomed[first], "field": "*", "kind": "removed", "old": float("nan"),
                                    "new": float("nan")})
            today = datetime.now(UTC).date().isoformat()
            state.record_revisions(settings.state_dir, name, value, today, changes, REMOVED_BY)
            return lake.remove_rows(path, list(dataset.key), dates, dataset.time_column)
    except LockTimeout:
        raise RepairError(f"an ingest of {name} is running; nothing was removed: retry once it has finished "
                          f"({settings.state_dir / f'ingest-{name}.lock'})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regime-lake", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    shown = commands.add_parser("show", help="print a partition's rows")
    removal = commands.add_parser("remove", help="remove a partition's rows of some dates")
    for sub in (shown, removal):
        sub.add_argument("dataset", help=", ".join(DATASETS))
        sub.add_argument("partition", help="symbol, underlying, market code or ticker, e.g. RUT")
    shown.add_argument("--from", dest="start", type=date.fromisoformat, help="first date, YYYY-MM-DD")
    shown.add_argument("--to", dest="end", type=date.fromisoformat, help="last date, YYYY-MM-DD")
    removal.add_argument("--date", dest="dates", type=date.fromisoformat, action="append", required=True,
                         help="a date (first key column) whose row goes, YYYY-MM-DD; repeat for more")
    removal.add_argument("--rebuild", type=date.fromisoformat, metavar="AS_OF",
                         help="then rebuild, validate and publish the warehouse as of this date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        if args.command == "show":
            print(show(settings, args.dataset, args.partition, args.start, args.end))
            return 0
        removed = remove(settings, args.dataset, args.partition, args.dates)
    except RepairError as exc:
        print(f"regime-lake: {exc}", file=sys.stderr)
        return 1
    print(f"removed {len(removed)} row(s) from {args.dataset} {args.partition} (recorded in meta.revisions):")
    print(removed.to_string(index=False))
    if args.rebuild is None:
        print("the published warehouse still holds them: rebuild it (regime-lake remove ... --rebuild AS_OF, "
              "regime-backfill, or the next regime_daily run)")
        return 0
    from regime import pipeline
    from regime.validation.gate import ValidationFailed

    try:
        summary = pipeline.build_validate_publish(args.rebuild, settings, incremental=False)
    except ValidationFailed as exc:
        print(f"regime-lake: the rebuild as of {args.rebuild} did not validate; nothing was published\n{exc}",
              file=sys.stderr)
        return 1
    print(f"rebuilt as of {args.rebuild} and published {summary['published']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
