"""The canonical datasets of the lake: name, hive partition key, unique key and typed schema.

    lake/<name>/<partition>=<value>/data.parquet

Each has a staging model `include/sql/staging/<name>.sql` reading it as `$<name>_glob`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from regime import lake
from regime.dataset_names import NAMES

_POSITIONS = [
    "dealer_positions_long_all", "dealer_positions_short_all", "dealer_positions_spread_all",
    "asset_mgr_positions_long", "asset_mgr_positions_short", "asset_mgr_positions_spread",
    "lev_money_positions_long", "lev_money_positions_short", "lev_money_positions_spread",
    "other_rept_positions_long", "other_rept_positions_short", "other_rept_positions_spread",
    "nonrept_positions_long_all", "nonrept_positions_short_all",
]


@dataclass(frozen=True)
class Dataset:
    name: str
    partition: str  # hive partition column: one file per value
    key: tuple[str, ...]  # unique within a partition; the newest fetch wins on it
    schema: pa.Schema  # every column, the partition column included
    # the date that places a row in time: a row is visible to a build as of this date or later (point in time)
    time_column: str = "date"
    # its upstream files carry each series' whole history (Cboe, CFTC, ETF issuers): a file is authoritative for the
    # dates it covers, and a row it no longer holds is dropped (lake.upsert_partition); False: one file per day (OCC)
    full_history: bool = True
    # an archive its publisher stopped updating (Cboe's put/call volume ends 2019-10-04): no freshness limit applies
    # (regime.freshness), and no session's build waits for it (regime.orchestration.SESSION_DATASETS)
    archive: bool = False

    def partition_path(self, lake_dir: Path, value: str) -> Path:
        return lake.partition_path(lake_dir, self.name, self.partition, value)

    def glob(self, lake_dir: Path) -> str:
        return str(lake_dir / self.name / "*" / "data.parquet")

    def has_data(self, lake_dir: Path) -> bool:
        return any((lake_dir / self.name).glob("*/data.parquet"))

    def empty_file(self, directory: Path) -> Path:
        """A typed Parquet file with no rows, read in place of a dataset the lake does not hold yet."""
        path = directory / f"empty-{self.name}.parquet"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            with lake.atomic_path(path) as tmp:
                pq.write_table(self.schema.empty_table(), tmp)
        return path

    def write(self, lake_dir: Path, frame: pd.DataFrame,
              on_revisions: Callable[[str, pd.DataFrame], None] | None = None) -> dict[str, int]:
        """Upsert `frame` into its partitions. Returns rows now held per partition value.

        `on_revisions(partition value, lake.revisions(...))` is called, before a partition file changes, with the
        numbers the write revises and the rows it drops (when there are any)."""
        missing = [f.name for f in self.schema if f.name not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: frame lacks columns {missing}")
        columns = [f.name for f in self.schema if f.name != self.partition]
        written = {}
        for value, part in frame.groupby(self.partition, sort=True):
            table = pa.Table.from_pandas(part[columns], preserve_index=False,
                                         schema=pa.schema([self.schema.field(c) for c in columns]))

            def before_write(old: pd.DataFrame, new: pd.DataFrame, value=str(value)) -> None:
                changes = lake.revisions(old, new, list(self.key))
                if not changes.empty:
                    on_revisions(value, changes)

            written[str(value)] = lake.upsert_partition(self.partition_path(lake_dir, str(value)),
                                                        table.to_pandas(), on=list(self.key),
                                                        time_column=self.time_column,
                                                        authoritative=self.full_history,
                                                        before_write=before_write if on_revisions else None)
        return written


INDEX_PRICES = Dataset("index_prices", "symbol", ("date",), pa.schema([
    ("date", pa.date32()), ("symbol", pa.string()), ("open", pa.float64()), ("high", pa.float64()),
    ("low", pa.float64()), ("close", pa.float64()),
]))
OPTIONS_VOLUME = Dataset("options_volume", "underlying", ("date",), pa.schema([
    ("date", pa.date32()), ("underlying", pa.string()), ("call_volume", pa.int64()), ("put_volume", pa.int64()),
]), full_history=False)
CFTC_TFF = Dataset("cftc_tff", "market_code", ("report_date",), pa.schema([
    ("report_date", pa.date32()), ("release_date", pa.date32()), ("market_code", pa.string()),
    ("market_name", pa.string()), ("open_interest", pa.int64()), *[(c, pa.int64()) for c in _POSITIONS],
]), time_column="release_date")
ETF_NAV = Dataset("etf_nav", "ticker", ("date",), pa.schema([
    ("date", pa.date32()), ("ticker", pa.string()), ("nav", pa.float64()), ("shares_outstanding", pa.float64()),
]))
# Cboe's daily put/call volume history per product (total, equity, index) since 2006, as published: the long history
# of options volume OCC does not keep (docs/sources.md, "Cboe put/call volume")
OPTIONS_PUTCALL = Dataset("options_putcall", "product", ("date",), pa.schema([
    ("date", pa.date32()), ("product", pa.string()), ("call_volume", pa.int64()), ("put_volume", pa.int64()),
    ("total_volume", pa.int64()), ("pc_ratio", pa.float64()),
]), archive=True)

ALL: tuple[Dataset, ...] = (INDEX_PRICES, OPTIONS_VOLUME, CFTC_TFF, ETF_NAV, OPTIONS_PUTCALL)
if tuple(d.name for d in ALL) != NAMES:  # the light copy the DAG files read (their Assets): one list of names
    raise ImportError(f"regime.datasets.ALL names {[d.name for d in ALL]}, but regime.dataset_names.NAMES "
                      f"{list(NAMES)}: list a dataset in both, in the same order")
