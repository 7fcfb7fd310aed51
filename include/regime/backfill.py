"""`regime-backfill --start D --end D`: fill the lake for a range of dates and rebuild the warehouse, with the
same code the DAG tasks run. Resumable and safe to rerun: every step is idempotent, finished steps are
recorded in `state/backfill/<start>_<end>.json`, and OCC days already in the lake are not fetched again.

The datasets whose files carry their whole history (Cboe indexes and put/call archive, CFTC, ETF issuers:
`Dataset.full_history`) are fetched once, as of the range's end; OCC publishes one file per underlying and day, so
its sessions are fetched month by month.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from itertools import groupby
from pathlib import Path

from regime import datasets, pipeline
from regime.config import Settings, get_settings

FULL_HISTORY = tuple(d.name for d in datasets.ALL if d.full_history)


def _checkpoint(settings: Settings, start: date, end: date) -> Path:
    return settings.state_dir / "backfill" / f"{start.isoformat()}_{end.isoformat()}.json"


def _load(path: Path) -> set[str]:
    return set(json.loads(path.read_text())["done"]) if path.exists() else set()


def _save(path: Path, done: set[str]) -> None:
    from regime.lake import write_bytes_atomic

    write_bytes_atomic(path, json.dumps({"done": sorted(done)}, indent=1).encode())


def plan(start: date, end: date) -> list[tuple[str, list[date]]]:
    """The steps of a backfill: (step name, OCC days or [])."""
    import pandas as pd

    from regime.calendar import nyse

    sessions = [d.date() for d in nyse().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))]
    steps: list[tuple[str, list[date]]] = [(f"ingest {name}", []) for name in FULL_HISTORY]
    for month, days in groupby(sessions, key=lambda d: (d.year, d.month)):
        steps.append((f"ingest options_volume {month[0]}-{month[1]:02d}", list(days)))
    steps.append(("build, validate, publish", []))
    return steps


def run(start: date, end: date, settings: Settings, alerts: bool = False, restart: bool = False,
        progress: bool = True) -> dict:
    from regime.locks import exclusive

    if start > end:
        raise SystemExit(f"error: --start {start} is after --end {end}")
    checkpoint = _checkpoint(settings, start, end)
    # one backfill of a range at a time: inside its lock, a temporary file of its checkpoint is a killed run's
    with exclusive(checkpoint.with_suffix(".lock"), f"backfill {start} .. {end}"):
        for leftover in checkpoint.parent.glob(f".{checkpoint.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        return _run(start, end, settings, checkpoint, alerts, restart, progress)


def _run(start: date, end: date, settings: Settings, checkpoint: Path, alerts: bool, restart: bool,
         progress: bool) -> dict:
    done = set() if restart else _load(checkpoint)
    steps = plan(start, end)
    if alerts:
        steps.append(("send alerts", []))
    summary: dict = {"steps": len(steps), "skipped": 0, "occ_files": 0}

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"backfill {start} .. {end}", total=len(steps))
        for name, days in steps:
            bar.update(task, description=name)
            if name in done:
                summary["skipped"] += 1
            elif name.startswith("ingest options_volume"):
                summary["occ_files"] += pipeline.ingest("options_volume", end, settings, days=days)["files"]
            elif name.startswith("ingest "):
                pipeline.ingest(name.split()[1], end, settings)
            elif name == "send alerts":
                summary["alerts"] = pipeline.alert(end, settings)
            else:
                summary["published"] = pipeline.build_validate_publish(end, settings)["published"]
            done.add(name)
            _save(checkpoint, done)
            bar.advance(task)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regime-backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first date, YYYY-MM-DD")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last date, YYYY-MM-DD")
    parser.add_argument("--alerts", action="store_true", help="also mail alerts for the end date")
    parser.add_argument("--restart", action="store_true", help="ignore the checkpoint of an earlier attempt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = run(args.start, args.end, get_settings(), alerts=args.alerts, restart=args.restart,
                  progress=not args.no_progress)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
