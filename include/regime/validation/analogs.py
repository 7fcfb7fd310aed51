"""Suites for marts.forward_returns and marts.episodes (regime.analogs): what followed each close, and the runs of
readings beyond a threshold. Two suites in one module: `SUITES` is what the gate registers.

forward_returns: one return per (date, subject, horizon), of a configured subject and horizon, ending after it
starts and never after the run's as-of date (point in time). episodes: one row per (series, kind, threshold, side,
start), start <= peak <= end <= as-of, as many sessions as an episode can have, no episode of a series overlapping
another of the same threshold and side.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from regime import analogs
from regime.validation.context import RunContext

FORWARD_SUBJECTS = [*analogs.FORWARD_INDEXES, *(f"{a}/{b}" for a, b in analogs.FORWARD_PAIRS)]


class ForwardReturns:
    NAME = "forward_returns"
    TABLE = "marts.forward_returns"
    # problem: a row that breaks the point-in-time rule or its own dates (NULL: none). A check on every row, not on
    # the column's maximum, which an empty table does not have
    QUERY = """
    select
        *,
        case
            when end_date > $as_of then 'ends after the as-of date'
            when end_date <= date then 'ends on or before its start'
        end as problem
    from marts.forward_returns
    """

    @staticmethod
    def expectations(run: RunContext) -> list:
        return [
            gxe.ExpectTableColumnsToMatchSet(column_set=["date", "subject", "horizon", "end_date", "value", "problem"],
                                             exact_match=True),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("date", "subject", "horizon", "end_date")],
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "subject", "horizon"]),
            gxe.ExpectColumnValuesToBeInSet(column="subject", value_set=FORWARD_SUBJECTS),
            gxe.ExpectColumnValuesToBeInSet(column="horizon", value_set=list(analogs.FORWARD_HORIZONS)),
            gxe.ExpectColumnValuesToBeNull(column="problem",
                                           notes="no return ends after the as-of date (point in time) or before it "
                                                 "starts"),
            *run.row_count_floor(ForwardReturns.NAME),
        ]


class Episodes:
    NAME = "episodes"
    TABLE = "marts.episodes"
    QUERY = """
    select
        *,
        case
            when end_date > $as_of then 'ends after the as-of date'
            when not (start_date <= peak_date and peak_date <= end_date) then 'peak outside the episode'
            when sessions < 1 then 'no session'
            when start_date <= lag(end_date) over (
                partition by indicator, subject, kind, threshold, side order by start_date
            ) then 'overlaps the previous episode'
        end as problem
    from marts.episodes
    """

    @staticmethod
    def expectations(run: RunContext) -> list:
        return [
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (
                "indicator", "subject", "kind", "side", "start_date", "end_date", "sessions", "peak_date",
                "peak_value", "fwd_index", "fwd_pair")],
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["level", "percentile", "record"]),
            gxe.ExpectColumnValuesToBeInSet(column="side", value_set=["high", "low"]),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["indicator", "subject", "kind", "threshold", "side",
                                                             "start_date"]),
            gxe.ExpectColumnValuesToBeNull(column="problem",
                                           notes="start <= peak <= end <= as-of; episodes of a threshold never "
                                                 "overlap"),
        ]


SUITES = (ForwardReturns, Episodes)
