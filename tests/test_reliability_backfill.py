"""Crash safety of the backfill: its OCC steps (pipeline.ingest with each month's days) sweep what
a killed earlier ingest of options_volume left, as pipeline.ingest does: temporary files of dead writers under the
dataset's lake folder and the OCC raw and quarantine folders; and a backfill, holding its range's lock, removes its
checkpoint's temporary files. A live writer's file, and other datasets' folders and other ranges' checkpoints (whose
locks it does not hold), are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

from regime import backfill

START, END = date(2024, 7, 15), date(2024, 7, 17)


def test_the_backfill_occ_steps_sweep_a_killed_ingest_s_leftovers(settings):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    stale = [settings.lake_dir / "options_volume" / "underlying=IWM" / f".data.parquet.{dead}.a1b2c3d4.tmp",
             settings.raw_dir / "occ" / f"as_of={END}" / "2024-07-16" / f".IWM.csv.{dead}.e5f6g7h8.tmp",
             settings.quarantine_dir / "occ" / f"as_of={END}" / f".SPY.csv.{dead}.i9j0k1l2.tmp",
             settings.lake_dir / "options_volume" / ".data.parquet.mnopqrst.tmp"]  # an older writer's name, no pid
    live = settings.lake_dir / "options_volume" / "underlying=SPY" / f".data.parquet.{os.getpid()}.uvwxyz12.tmp"
    other = settings.lake_dir / "index_prices" / "symbol=RUT" / f".data.parquet.{dead}.34567890.tmp"
    for path in (*stale, live, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half-written")
    # only the OCC step is left to do: the earlier steps of this range are recorded as done
    steps = [name for name, _ in backfill.plan(START, END)]
    assert steps == ["ingest index_prices", "ingest cftc_tff", "ingest etf_nav", "ingest options_putcall",
                     "ingest options_volume 2024-07", "build, validate, publish"]
    checkpoint = settings.state_dir / "backfill" / f"{START}_{END}.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text(json.dumps({"done": [s for s in steps if s != "ingest options_volume 2024-07"]}))
    stale.append(checkpoint.parent / f".{checkpoint.name}.{dead}.abcdef12.tmp")  # a killed backfill's checkpoint
    running = checkpoint.parent / f".2024-01-01_2024-01-31.json.{dead}.34abcdef.tmp"  # another range's
    for path in stale[-1:] + [running]:
        path.write_bytes(b"half-written")

    summary = backfill.run(START, END, settings, progress=False)

    assert summary == {"steps": 6, "skipped": 5, "occ_files": 18}  # 3 sessions x 6 underlyings
    assert [p for p in stale if p.exists()] == []
    assert live.exists() and other.exists()  # a running writer's file; a folder of another dataset's lock
    assert running.exists()  # another range's checkpoint: its own backfill's lock, not this one, guards it
    assert sorted(p.name for p in (settings.lake_dir / "options_volume").iterdir()) == [
        f"underlying={u}" for u in sorted(settings.watchlist)]
    assert json.loads(checkpoint.read_text())["done"] == sorted(steps)
