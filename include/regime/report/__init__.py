"""The per-run HTML report: `write_report(settings, as_of)` -> `$REGIME_DATA_DIR/reports/<as_of>.html`.

`render_report` and `write_report` are loaded on first use, so that `from regime.report import fmt` (the alert
rules, in the build task) does not import matplotlib (~0.5 s) in a task that draws no chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["render_report", "write_report"]

if TYPE_CHECKING:
    from regime.report.build import render_report, write_report


def __getattr__(name: str):
    if name in __all__:
        from regime.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
