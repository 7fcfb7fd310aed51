"""Every REGIME_* setting in one place, read when a task runs (never at DAG parse time).

| variable | default | meaning |
|---|---|---|
| REGIME_DATA_DIR | `<project>/data` | root of the lake (raw/, lake/, quarantine/), the warehouse and reports |
| REGIME_SOURCE | `mirror` | `mirror` reads files from REGIME_MIRROR_DIR; `live` fetches from the publishers |
| REGIME_MIRROR_DIR | `<project>/include/sample/mirror` | a folder laid out like the upstream sites |
| REGIME_ALERT_TO | `regime-alerts@localhost` | comma-separated recipients of alert e-mails |
| REGIME_ZSCORE_ALERT | `3.0` | alert when the latest abs(zscore_50d) of an index reaches this |
| REGIME_INDEXES | `RUT,SPX,NDX,DJX,VIX,RVX` | Cboe series to ingest |
| REGIME_FRESHNESS_SESSIONS | `3` | NYSE sessions a source may lag the as-of date before a warning |
| REGIME_HTTP_TIMEOUT | `30` | seconds per HTTP request in live mode |
| REGIME_SMTP_CONN_ID | `smtp_default` | Airflow connection used to send mail (secrets live there only) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from regime import PROJECT_DIR


class ConfigError(ValueError):
    """A REGIME_* setting has a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source: str
    mirror_dir: Path
    alert_to: tuple[str, ...]
    zscore_alert: float
    indexes: tuple[str, ...]
    freshness_sessions: int
    http_timeout: float
    smtp_conn_id: str

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def build_dir(self) -> Path:
        return self.data_dir / "build"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(name: str, default: str, kind: type):
    raw = os.environ.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    env = os.environ.get
    source = env("REGIME_SOURCE", "mirror").strip().lower()
    if source not in {"mirror", "live"}:
        raise ConfigError(f"REGIME_SOURCE={source!r}: expected 'mirror' or 'live'")
    mirror_dir = Path(env("REGIME_MIRROR_DIR", str(PROJECT_DIR / "include" / "sample" / "mirror")))
    data_dir = Path(env("REGIME_DATA_DIR", str(PROJECT_DIR / "data")))
    return Settings(
        data_dir=data_dir.expanduser().resolve(),
        source=source,
        mirror_dir=mirror_dir.expanduser().resolve(),
        alert_to=_list(env("REGIME_ALERT_TO", "regime-alerts@localhost")),
        zscore_alert=_number("REGIME_ZSCORE_ALERT", "3.0", float),
        indexes=tuple(s.upper() for s in _list(env("REGIME_INDEXES", "RUT,SPX,NDX,DJX,VIX,RVX"))),
        freshness_sessions=_number("REGIME_FRESHNESS_SESSIONS", "3", int),
        http_timeout=_number("REGIME_HTTP_TIMEOUT", "30", float),
        smtp_conn_id=env("REGIME_SMTP_CONN_ID", "smtp_default"),
    )
