"""The report's view of regime/words.py: readings scaled for charts, and dates of table cells."""

from __future__ import annotations

import pandas as pd

from regime import words


class Units:
    """Scales readings for display: percent-kind indicators are fractions in the warehouse (0.05 = 5%, see
    regime.indicators.REGISTRY) and are shown and plotted in percent (regime.words)."""

    def scale(self, indicator: str) -> float:
        return words.scale(indicator)

    def plotted(self, indicator: str, values):
        """Values as plotted (percent-kind readings in percent)."""
        return values * self.scale(indicator)

    def text(self, indicator: str, value) -> str:
        """A reading as written in tables and captions."""
        return words.value_text(indicator, value)


def day(d) -> str:
    if d is None or pd.isna(d):
        return "—"
    return pd.Timestamp(d).date().isoformat()
