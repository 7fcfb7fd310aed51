"""Suite for marts.extremes: record flags, "highest/lowest since" dates and percentiles of every reading."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.validation.context import RunContext

NAME = "extremes"
TABLE = "marts.extremes"
COLUMNS = ["date", "indicator", "subject", "value", "history_start", "highest_since", "lowest_since",
           "is_record_high", "is_record_low", "pct_rank"]
QUERY = """
select
    *,
    case
        when highest_since >= date or lowest_since >= date then 'a since-date not before the reading'
        when history_start > date then 'history starts after the reading'
        when is_record_high and highest_since is not null then 'a record high with a since-date'
        when is_record_low and lowest_since is not null then 'a record low with a since-date'
    end as inconsistency
from marts.extremes
"""
# A full build's gate hands GX only the rows that may fail a row-level expectation below (see indicators.SUSPECT)
SUSPECT = """
date is null or indicator is null or subject is null or value is null or isnan(value) or history_start is null
or pct_rank is null or isnan(pct_rank) or pct_rank <= 0 or pct_rank > 1 or inconsistency is not null
"""


def suspect_params(run: RunContext) -> dict:
    return {}


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=[*COLUMNS, "inconsistency"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "indicator", "subject", "value",
                                                                 "history_start", "pct_rank")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "indicator", "subject"]),
        gxe.ExpectColumnValuesToBeBetween(column="pct_rank", min_value=0, max_value=1, strict_min=True,
                                          notes="a percentile in (0, 1]"),
        gxe.ExpectColumnValuesToBeNull(column="inconsistency", notes="record flags and since-dates agree"),
        *run.row_count_floor(NAME),
    ]
