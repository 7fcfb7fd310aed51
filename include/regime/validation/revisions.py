"""Suite for meta.revisions: numbers a full-history upstream file changed in the past, and rows it dropped.

The lake records every revision (state table `revisions`, lake.revisions) before it changes a row; each build
copies the records into meta.revisions. Per series, date and column the suite compares the value before the first
recorded revision with the value after the last one (a revision that an upstream took back cancels out):

- a price (index open/high/low/close, ETF NAV) moved by more than MAX_PRICE_REVISION blocks the build until an
  entry of the reviewed exception list accepts it (dataset index_prices or etf_nav, the series, the date, check
  `revision`);
- every revision and removal that the ingests of this as-of date recorded is a warning.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from regime.validation.context import RunContext
from regime.validation.plausibility import messages, num

NAME = "revisions"
TABLE = "meta.revisions"
# Past prices are final: an index close revised by a few tenths of a percent is a correction; by 5 % it is another
# series, a unit change or a broken file, and an analyst looks before it rewrites the history the indicators read.
MAX_PRICE_REVISION = 0.05
PRICE_FIELDS = {"index_prices": ("open", "high", "low", "close"), "etf_nav": ("nav",)}
QUERY = """
select seq, as_of, dataset, series, date as date_iso, field, kind,
       try_cast(old as double) as old, try_cast(new as double) as new, file
from meta.revisions
order by seq
"""
COLUMNS = ["dataset", "series", "date_iso", "field", "kind", "first_old", "last_new", "file", "recorded",
           "change", "unaccepted", "recent"]


def prepare(frame: pd.DataFrame, run: RunContext) -> pd.DataFrame:
    """One row per dataset, series, date, field and kind: the value before the first revision, after the last."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    groups = frame.groupby(["dataset", "series", "date_iso", "field", "kind"], sort=True, dropna=False)
    out = groups.agg(first_old=("old", "first"), last_new=("new", "last"), file=("file", "last"),
                     recorded=("as_of", "max")).reset_index()
    out["change"] = out["last_new"] / out["first_old"].where(out["first_old"] != 0) - 1
    accepted = {(e.dataset, e.series, e.date) for e in run.exceptions if e.check == "revision"}
    price = pd.Series([f in PRICE_FIELDS.get(d, ()) for d, f in zip(out["dataset"], out["field"], strict=True)],
                      index=out.index)
    listed = pd.Series([(d, s, t) in accepted for d, s, t in zip(out["dataset"], out["series"], out["date_iso"],
                                                                 strict=True)], index=out.index)

    def said(i) -> str:
        row = out.loc[i]
        if row["kind"] == "removed":
            return f"{row['dataset']} {row['series']} {row['date_iso']}: row removed (not in {row['file']})"
        return (f"{row['dataset']} {row['series']} {row['date_iso']} {row['field']} {num(row['first_old'])} -> "
                f"{num(row['last_new'])} ({row['change']:+.1%}) by {row['file']}")

    big = price & (out["change"].abs() > MAX_PRICE_REVISION) & ~listed
    recent = out["recorded"] == run.as_of.isoformat()
    return out.assign(unaccepted=messages(big, said), recent=messages(recent, said))[COLUMNS]


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectColumnValuesToBeNull(column="unaccepted",
                                       notes=f"a past price revised by more than {MAX_PRICE_REVISION:.0%} waits for "
                                             "review: accept it with an exception entry (check revision)"),
        gxe.ExpectColumnValuesToBeNull(column="recent", severity="warning",
                                       notes=f"history revised or removed by the ingests as of {run.as_of}"),
    ]
