"""Suite for marts.indicators: one reading per (date, indicator, subject)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.indicators import REGISTRY
from regime.validation.context import RunContext

NAME = "indicators"
TABLE = "marts.indicators"
# after_as_of: the day of a reading dated after the run's as-of date (NULL: none); a check on every row, not on the
# column's maximum, which a frame of no rows (an update that wrote none) does not have
QUERY = """
select *, strftime(date, '%Y-%m-%d') as date_iso, case when date > $as_of then strftime(date, '%Y-%m-%d') end
    as after_as_of
from marts.indicators
"""
# A full build's gate hands GX only the rows that may fail a row-level expectation below (a superset: NaN beyond a
# bound, which GX ignores, is included) and checks the table as a whole on the invariants frame (scope.py): the
# table has a reading per date, indicator and subject, tens of millions on the panel.
SUSPECT = """
date is null or indicator is null or subject is null or date > $as_of
or not list_contains($names, indicator)
or (list_contains($bounded, indicator)
    and (value < ($lows)[list_position($bounded, indicator)] or value > ($highs)[list_position($bounded, indicator)]))
"""


def suspect_params(run: RunContext) -> dict:
    """The values SUSPECT binds: the registry's names and bounds."""
    bounded = [i for i in REGISTRY if i.bounds is not None]
    return {"as_of": run.as_of, "names": [i.name for i in REGISTRY], "bounded": [i.name for i in bounded],
            "lows": [float(i.bounds[0]) for i in bounded], "highs": [float(i.bounds[1]) for i in bounded]}


def expectations(run: RunContext) -> list:
    checks = [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "indicator", "subject", "value", "date_iso",
                                                     "after_as_of"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "indicator", "subject")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "indicator", "subject"]),
        gxe.ExpectColumnValuesToBeInSet(column="indicator", value_set=[i.name for i in REGISTRY]),
        gxe.ExpectColumnValuesToBeNull(column="after_as_of", notes="no reading after the run's as-of date"),
    ]
    for indicator in REGISTRY:
        if indicator.bounds is not None:
            low, high = indicator.bounds
            checks.append(gxe.ExpectColumnValuesToBeBetween(
                column="value", min_value=low, max_value=high,
                row_condition=f'indicator=="{indicator.name}"', condition_parser="pandas",
                notes=f"{indicator.name} is bounded to [{low}, {high}]"))
    return [*checks, *run.row_count_floor(NAME)]
