"""Suite for staging.options_putcall: Cboe's daily put/call volume per product (total, equity, index), 2006-2019.

The parser refuses a file that contradicts itself (regime.sources.cboe_putcall); this suite holds the table to the
same rules, so a wrong value that reached the lake another way (a hand edit, a bug) does not reach the warehouse:
volumes >= 0, total = calls + puts, the published ratio within rounding of puts / calls and within RATIO_BOUNDS,
one row per product and date, NYSE sessions only (every date of the genuine files is one).
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime.sources.cboe_putcall import PRODUCTS, RATIO_TOLERANCE
from regime.validation.context import RunContext

NAME = "options_putcall"
TABLE = "staging.options_putcall"
RATIO_BOUNDS = (0.0, 10.0)  # the putcall_ratio indicator's bounds: the genuine files reach 3.50 (index, 2006-11-21)
QUERY = """
select
    *,
    strftime(date, '%Y-%m-%d') as date_iso,
    isodow(date) as iso_dow,
    total_volume - (call_volume + put_volume) as total_minus_sum,
    abs(put_volume::double / nullif(call_volume, 0) - pc_ratio) as ratio_gap
from staging.options_putcall
"""


def expectations(run: RunContext) -> list:
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["date", "product", "call_volume", "put_volume", "total_volume",
                                                     "pc_ratio", "date_iso", "iso_dow", "total_minus_sum",
                                                     "ratio_gap"], exact_match=True),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "product", "call_volume", "put_volume",
                                                                 "total_volume", "pc_ratio")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "product"]),
        gxe.ExpectColumnValuesToBeInSet(column="product", value_set=list(PRODUCTS),
                                        notes="Cboe's put/call products: total, equity, index"),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, notes="volumes are never negative")
          for c in ("call_volume", "put_volume", "total_volume")],
        gxe.ExpectColumnValuesToBeBetween(column="total_minus_sum", min_value=0, max_value=0,
                                          notes="total volume is call volume plus put volume"),
        gxe.ExpectColumnValuesToBeBetween(column="pc_ratio", min_value=RATIO_BOUNDS[0], max_value=RATIO_BOUNDS[1],
                                          notes="a day's puts over calls on Cboe: never above 3.5 in 2006-2019"),
        gxe.ExpectColumnValuesToNotBeNull(column="ratio_gap", notes="a day with call volume (the ratio is defined)"),
        gxe.ExpectColumnValuesToBeBetween(column="ratio_gap", max_value=RATIO_TOLERANCE,
                                          notes="the published P/C ratio is puts / calls rounded to 2 decimals"),
        gxe.ExpectColumnValuesToBeInSet(column="iso_dow", value_set=[1, 2, 3, 4, 5], notes="NYSE sessions only"),
        gxe.ExpectColumnValuesToNotBeInSet(column="date_iso", value_set=run.closures_checked,
                                           notes="NYSE sessions only"),
        *run.row_count_floor(NAME),
    ]
