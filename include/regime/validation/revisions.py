"""Suite for meta.revisions: numbers a full-history upstream file changed in the past, and rows it dropped.

The lake records every revision (state table `revisions`, lake.revisions) before it changes a row; each build
copies the records into meta.revisions. Per series, date and column the suite compares the value before the first
recorded revision with the value after the last one (a revision that an upstream took back cancels out):

- a price (index open/high/low/close, ETF NAV) moved by more than MAX_PRICE_REVISION, or a count (shares
  outstanding, CFTC positions, option volumes) by more than MAX_COUNT_REVISION and MIN_COUNT_REVISION units,
  blocks the build until an entry of the reviewed exception list accepts it (the lake dataset, the series, the
  date, check `revision`);
- more than MAX_REMOVALS rows of one series removed by one file (the rows a full-history file no longer holds within
  its own dates) block until accepted (check `removal`, the date: the as-of date of the ingest that removed them);
  a removed row that a later file brought back, and a removal by `regime-lake remove`, no longer count;
- a number that became empty, or an empty one that got a value, never blocks: it has no size;
- every revision and removal that the ingests of this as-of date recorded is a warning.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime import datasets
from regime.state import REMOVED_BY
from regime.validation.context import RunContext
from regime.validation.plausibility import messages, num

NAME = "revisions"
TABLE = "meta.revisions"
# Past prices are final: an index close revised by a few tenths of a percent is a correction; by 5 % it is another
# series, a unit change or a broken file, and an analyst looks before it rewrites the history the indicators read.
MAX_PRICE_REVISION = 0.05
PRICE_FIELDS = {"index_prices": ("open", "high", "low", "close"), "etf_nav": ("nav",)}
# Counts are restated more often (the CFTC revises positions; issuers restate shares outstanding), so only a
# change larger than a day may bring (the shares_move bound of the etf_nav suite: half) blocks, and small counts
# (a CFTC category of a few hundred contracts) never do.
MAX_COUNT_REVISION = 0.50
MIN_COUNT_REVISION = 1000
# A corrected file takes out a row or two (a Saturday, a duplicate day); a file that drops a week of history within
# its own dates is broken until someone has looked.
MAX_REMOVALS = 5


def _present() -> str:
    """Keys every full-history dataset's staging table holds now (dataset, series, date_iso)."""
    return " union all ".join(
        f"select '{d.name}' as dataset, {d.partition} as series, strftime({d.key[0]}, '%Y-%m-%d') as date_iso "
        f"from staging.{d.name}" for d in datasets.ALL if d.full_history)


QUERY = f"""
with revisions as (

    select seq, as_of, dataset, series, date as date_iso, field, kind,
           try_cast(old as double) as old, try_cast(new as double) as new, file
    from meta.revisions

),

present as (

    {_present()}

),

final as (

    select revisions.*, present.dataset is not null as present_now
    from revisions
    left join present
        on revisions.kind = 'removed'
        and present.dataset = revisions.dataset
        and present.series = revisions.series
        and present.date_iso = revisions.date_iso

)

select * from final order by seq
"""
COLUMNS = ["dataset", "series", "date_iso", "field", "kind", "first_old", "last_new", "file", "recorded",
           "change", "unaccepted", "removals", "recent"]


def _said(row) -> str:
    if row["kind"] == "removed":
        return f"{row['dataset']} {row['series']} {row['date_iso']}: row removed (not in {row['file']})"
    return (f"{row['dataset']} {row['series']} {row['date_iso']} {row['field']} {_value(row['first_old'])} -> "
            f"{_value(row['last_new'])}{_change(row['change'])} by {row['file']}")


def _value(value: float) -> str:
    return "empty" if pd.isna(value) else num(value)


def _change(change: float) -> str:
    return "" if pd.isna(change) else f" ({change:+.1%})"


def too_big(dataset: str, field: str, old: float, new: float) -> bool:
    """Whether a revision from `old` to `new` is beyond its documented bound (never when either is empty)."""
    if pd.isna(old) or pd.isna(new):
        return False
    if old == 0:
        return field not in PRICE_FIELDS.get(dataset, ()) and abs(new) > MIN_COUNT_REVISION
    change = abs(new / old - 1)
    if field in PRICE_FIELDS.get(dataset, ()):
        return change > MAX_PRICE_REVISION
    return change > MAX_COUNT_REVISION and abs(new - old) > MIN_COUNT_REVISION


def _removals(frame: pd.DataFrame, run: RunContext) -> pd.Series:
    """One message per unaccepted mass removal (on the group's first row), None elsewhere."""
    out = pd.Series(None, index=frame.index, dtype=object)
    gone = frame[(frame["kind"] == "removed") & ~frame["present_now"].astype(bool) & (frame["file"] != REMOVED_BY)]
    if gone.empty:
        return out
    accepted = {(e.dataset, e.series, e.date) for e in run.exceptions if e.check == "removal"}
    for (dataset, series, as_of, file), rows in gone.groupby(["dataset", "series", "as_of", "file"], sort=True):
        if len(rows) <= MAX_REMOVALS or (dataset, series, as_of) in accepted:
            continue
        dates = sorted(rows["date_iso"])
        out[rows.index[0]] = (f"{dataset} {series}: {len(rows)} rows removed by {file} as of {as_of} "
                              f"({dates[0]} … {dates[-1]}; more than {MAX_REMOVALS}): accept with the exception "
                              f"entry {dataset},{series},{as_of},removal,<reason>")
    return out


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    """One row per dataset, series, date, field and kind: the value before the first revision, after the last."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    removals = _removals(frame, run)
    frame = frame.assign(removals=removals)
    groups = frame.groupby(["dataset", "series", "date_iso", "field", "kind"], sort=True, dropna=False)
    # the values of the first and the last record themselves ("first"/"last" would skip an empty one)
    out = groups.agg(first_old=("old", lambda s: s.iloc[0]), last_new=("new", lambda s: s.iloc[-1]),
                     file=("file", "last"), recorded=("as_of", "max"), removals=("removals", "first")).reset_index()
    out["change"] = out["last_new"] / out["first_old"].where(out["first_old"] != 0) - 1
    accepted = {(e.dataset, e.series, e.date) for e in run.exceptions if e.check == "revision"}
    big = pd.Series([kind == "revised" and too_big(d, f, o, n) and (d, s, t) not in accepted
                     for d, s, t, f, kind, o, n in zip(out["dataset"], out["series"], out["date_iso"], out["field"],
                                                       out["kind"], out["first_old"], out["last_new"], strict=True)],
                    index=out.index)
    recent = out["recorded"] == run.as_of.isoformat()
    return out.assign(unaccepted=messages(big, lambda i: _said(out.loc[i])),
                      recent=messages(recent, lambda i: _said(out.loc[i])))[COLUMNS]


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectColumnValuesToBeNull(column="unaccepted",
                                       notes=f"a past price revised by more than {MAX_PRICE_REVISION:.0%} (a count by "
                                             f"more than {MAX_COUNT_REVISION:.0%}) waits for review: accept it with "
                                             "an exception entry (check revision)"),
        gxe.ExpectColumnValuesToBeNull(column="removals",
                                       notes=f"more than {MAX_REMOVALS} rows of a series removed by one file wait "
                                             "for review: accept them with an exception entry (check removal)"),
        gxe.ExpectColumnValuesToBeNull(column="recent", severity="warning",
                                       notes=f"history revised or removed by the ingests as of {run.as_of}"),
    ]
