"""Suite for marts.indicators: one reading per (date, indicator, subject)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.indicators import REGISTRY
from regime.validation.context import RunContext

NAME = "indicators"
TABLE = "marts.indicators"
QUERY = "select *, strftime(date, '%Y-%m-%d') as date_iso from marts.indicators"


def expectations(run: RunContext) -> list:
    checks = [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "indicator", "subject", "value", "date_iso"],
                                         exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "indicator", "subject")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "indicator", "subject"]),
        gxe.ExpectColumnValuesToBeInSet(column="indicator", value_set=[i.name for i in REGISTRY]),
        gxe.ExpectColumnMaxToBeBetween(column="date_iso", max_value=run.as_of.isoformat(),
                                       notes="no reading after the run's as-of date"),
    ]
    for indicator in REGISTRY:
        if indicator.bounds is not None:
            low, high = indicator.bounds
            checks.append(gxe.ExpectColumnValuesToBeBetween(
                column="value", min_value=low, max_value=high,
                row_condition=f'indicator=="{indicator.name}"', condition_parser="pandas",
                notes=f"{indicator.name} is bounded to [{low}, {high}]"))
    return [*checks, *run.row_count_floor(NAME)]
