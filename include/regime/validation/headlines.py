"""Suite for marts.headlines: one to three ranked sentences per day saying what was historic.

No "rows never fewer" floor: a warehouse may hold no headline at all (a short history has no record old enough and
nothing that is the highest in years), and the table is derived from marts.extremes (which has the floor) by
editorial rules (`headline_since_days`, `record_min_days`) that a deploy may tighten.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.validation.context import RunContext

NAME = "headlines"
TABLE = "marts.headlines"
COLUMNS = ["date", "rank", "headline", "indicator", "subject", "value"]
# after_as_of: the day of a headline dated after the run's as-of date (NULL: none). A check on every row, not on the
# column's maximum, which an empty table does not have (GX fails a max check on no rows)
QUERY = """
select *, case when date > $as_of then strftime(date, '%Y-%m-%d') end as after_as_of
from marts.headlines
"""


def expectations(run: RunContext) -> list:
    return [
        *[gxe.ExpectColumnToExist(column=c) for c in COLUMNS],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "rank", "headline")],
        gxe.ExpectColumnValuesToBeBetween(column="rank", min_value=1, max_value=3,
                                          notes="one to three headlines a day"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "rank"], notes="one headline per rank and day"),
        gxe.ExpectColumnValuesToBeNull(column="after_as_of", notes="no day after the run's as-of date"),
    ]
