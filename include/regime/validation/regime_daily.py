"""Suite for marts.regime_daily: one row per trading day with the headline readings and the regime label."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.validation.context import RunContext

NAME = "regime_daily"
TABLE = "marts.regime_daily"
LABELS = ["small-cap squeeze", "small-cap capitulation", "stretched", "normal", "insufficient history"]
QUERY = "select *, strftime(date, '%Y-%m-%d') as date_iso from marts.regime_daily"


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectColumnToExist(column="date"),
        gxe.ExpectColumnToExist(column="label"),
        gxe.ExpectColumnToExist(column="records"),
        gxe.ExpectColumnValuesToNotBeNull(column="date"),
        gxe.ExpectColumnValuesToBeUnique(column="date", notes="one row per trading day"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=LABELS, notes="labels come from documented rules"),
        gxe.ExpectColumnMaxToBeBetween(column="date_iso", max_value=run.as_of.isoformat(),
                                       notes="no day after the run's as-of date"),
        *run.row_count_floor(NAME),
    ]
