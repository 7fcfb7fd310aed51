"""The per-run HTML report: `write_report(settings, as_of)` -> `$REGIME_DATA_DIR/reports/<as_of>.html`."""

from regime.report.build import render_report, write_report

__all__ = ["render_report", "write_report"]
