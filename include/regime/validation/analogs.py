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
    KINDS = ["level", "percentile", "record"]
    SIDES = ["high", "low"]
    NOT_NULL = ("indicator", "subject", "kind", "side", "start_date", "end_date", "sessions", "peak_date",
                "peak_value", "fwd_index", "fwd_pair")
    KEY = ["indicator", "subject", "kind", "threshold", "side", "start_date"]  # threshold NULL for a record
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
    # Validated over the whole table on every run, a full build's or an update's: an update rewrites the episodes
    # from a cut of its own (analogs.episodes_from, years back behind a long episode), which no date column scopes.
    # DuckDB hands GX only the rows that may fail an expectation below (each failing row is one: the counts are
    # GX's on the whole table), so what GX gets does not grow with history (docs/validation.md).
    SUSPECT = " or ".join(f"{c} is null" for c in NOT_NULL) + """
        or not list_contains($kinds, kind) or not list_contains($sides, side) or problem is not null
        or count(*) over (partition by indicator, subject, kind, threshold, side, start_date) > 1"""

    @staticmethod
    def suspect_query(attached: bool) -> str:
        """The suspect rows (a duplicate key found by a window: QUALIFY, not WHERE)."""
        return f"select * from ({Episodes.QUERY}) qualify {Episodes.SUSPECT}"

    @staticmethod
    def suspect_params(run: RunContext) -> dict:
        return {"kinds": Episodes.KINDS, "sides": Episodes.SIDES}

    @staticmethod
    def expectations(run: RunContext) -> list:
        return [
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in Episodes.NOT_NULL],
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=Episodes.KINDS),
            gxe.ExpectColumnValuesToBeInSet(column="side", value_set=Episodes.SIDES),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=Episodes.KEY),
            gxe.ExpectColumnValuesToBeNull(column="problem",
                                           notes="start <= peak <= end <= as-of; episodes of a threshold never "
                                                 "overlap"),
        ]


SUITES = (ForwardReturns, Episodes)
