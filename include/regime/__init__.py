"""Small-cap regime monitor: ingest public market data, build regime indicators, validate, alert."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parents[1]
SQL_DIR = PACKAGE_DIR.parent / "sql"
