"""The indicator registry: name -> SQL file, with the sentence that documents it.

Adding an indicator = one SQL file in include/sql/indicators/ that selects (date, subject, value),
one entry here, one paragraph in docs/indicators.md and one test with a hand-checked value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indicator:
    name: str
    sql: str  # path under include/sql/
    summary: str
    headline: bool = False  # shown in the regime summary and watched for records
    bounds: tuple[float, float] | None = None  # values outside are impossible: validation blocks them


REGISTRY: tuple[Indicator, ...] = (
    Indicator(
        "zscore_50d",
        "indicators/zscore_50d.sql",
        "Close minus the mean of the 50 closes ending that day, over their sample standard deviation.",
        headline=True,
        bounds=(-7.0, 7.0),  # a 50-sample z-score cannot exceed (n - 1) / sqrt(n) = 6.93
    ),
)


def get(name: str) -> Indicator:
    for indicator in REGISTRY:
        if indicator.name == name:
            return indicator
    raise KeyError(name)
