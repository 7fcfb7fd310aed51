"""Suite for marts.regime_daily: one row per trading day with the headline readings and the regime label."""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.validation.context import RunContext

NAME = "regime_daily"
TABLE = "marts.regime_daily"
LABELS = ["small-cap squeeze", "small-cap capitulation", "stretched", "normal", "insufficient history"]
# after_as_of: a day after the run's as-of date (NULL: none), checked on every row (see indicators.QUERY)
QUERY = """
select *, strftime(date, '%Y-%m-%d') as date_iso, case when date > $as_of then strftime(date, '%Y-%m-%d') end
    as after_as_of
from marts.regime_daily
"""


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectColumnToExist(column="date"),
        gxe.ExpectColumnToExist(column="label"),
        gxe.ExpectColumnToExist(column="records"),
        gxe.ExpectColumnValuesToNotBeNull(column="date"),
        gxe.ExpectColumnValuesToBeUnique(column="date", notes="one row per trading day"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=LABELS, notes="labels come from documented rules"),
        gxe.ExpectColumnValuesToBeNull(column="after_as_of", notes="no day after the run's as-of date"),
        *run.row_count_floor(NAME),
    ]
