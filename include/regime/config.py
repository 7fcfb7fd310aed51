"""Every REGIME_* setting in one place, read when a task runs (never at DAG parse time).

| variable | default | meaning |
|---|---|---|
| REGIME_DATA_DIR | `<project>/data` | root of the lake (raw/, lake/, quarantine/), the warehouse and reports |
| REGIME_SOURCE | `mirror` | `mirror` reads files from REGIME_MIRROR_DIR; `live` fetches from the publishers |
| REGIME_MIRROR_DIR | `<project>/include/sample/mirror` | a folder laid out like the upstream sites |
| REGIME_ALERT_TO | `regime-alerts@localhost` | comma-separated recipients of alert e-mails |
| REGIME_ZSCORE_ALERT | `3.0` | alert when the latest abs(zscore_50d) of an index reaches this |
| REGIME_SINCE_YEARS | `10` | alert when a headline reading is the highest/lowest in more than this many years |
| REGIME_INDEXES | `RUT,SPX,NDX,DJX,VIX,RVX` | Cboe series to ingest |
| REGIME_FRESHNESS_SESSIONS | `3` | sessions a source may lag the as-of date: warning; failure for latest-session runs |
| REGIME_GAP_TOLERANCE_SESSIONS | `2` | missing NYSE sessions inside a series before a gap warning |
| REGIME_HTTP_TIMEOUT | `30` | seconds per HTTP request in live mode |
| REGIME_SMTP_CONN_ID | `smtp_default` | Airflow connection used to send mail (secrets live there only) |
| REGIME_SMTP_CONNECT_TIMEOUT | `30` | seconds an alert mail may take to connect (TCP, greeting, STARTTLS, login) |
| REGIME_SMTP_SEND_TIMEOUT | `120` | seconds an alert mail may take to be sent once connected (the whole exchange) |
| REGIME_WATCHLIST | `IWM,SPY,QQQ,NVDA,TSLA,AAPL` | underlyings whose OCC options volume is ingested |
| REGIME_OCC_LOOKBACK_SESSIONS | `10` | live mode: NYSE sessions back from the as-of date to fill in OCC volume |
| REGIME_CFTC_MARKETS | `13874A,239742,209742` | CFTC market codes (E-mini S&P 500, Russell E-mini, Nasdaq mini) |
| REGIME_CFTC_VIA | `zip` | live mode: `zip` (yearly history files) or `api` (public reporting API, gpe5-46if) |
| REGIME_CFTC_FIRST_YEAR | `2019` | live mode: first yearly CFTC file fetched |
| REGIME_ETF_TICKERS | `IWM,IJR,VTWO,SPY,IVV,QQQ` | ETFs whose NAV and shares outstanding are ingested |
| REGIME_SMALL_CAPS / REGIME_LARGE_CAPS | `IWM,IJR,VTWO` / `SPY,IVV,QQQ` | the two sides of the ETF flow spread |
| REGIME_LIVE_BASE_URL | (unset) | live mode: fetch publisher paths from this base (a proxy, a test server) |
| REGIME_YAHOO_INDEXES | (empty: off) | optional Yahoo Finance index series Cboe lacks, e.g. `^SP600` (as SP600) |
| REGIME_DUCKDB_MEMORY_LIMIT | `1GB` | DuckDB's memory limit while building the warehouse (beyond it: spill to disk) |
| REGIME_MAX_FILE_MB | (unset: per source) | MiB limit of any upstream file (else MAX_FILE_MB: 16 to 64 per source) |
| REGIME_PUBLISH_URI | (unset: off) | `s3://bucket/prefix` or a folder: each publish also uploads the warehouse there |
| REGIME_LAKE_URI | (unset: REGIME_DATA_DIR) | `s3://bucket/prefix`: raw/, lake/, quarantine/ in a bucket (lake_store) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from regime import PROJECT_DIR

# Size limits (MiB) of one upstream file per source, well above the real files: Cboe's longest history (SPX since
# 1927) is 2 MB, a full-year CFTC zip 0.5 MB, an issuer's NAV history 3 MB (Invesco's JSON since 1999), an SSGA
# workbook 50 kB, the sample's Yahoo chart 0.14 MB, an OCC day answer a few kB, a Cboe put/call history 0.14 MB.
# REGIME_MAX_FILE_MB overrides them all.
MAX_FILE_MB = {"cboe": 64.0, "cftc": 64.0, "etf": 64.0, "yahoo": 32.0, "occ": 16.0, "cboe_putcall": 16.0}
DEFAULT_MAX_FILE_MB = 64.0  # a source not listed above


def max_file_bytes(source: str, override_mb: float | None = None) -> int:
    """The size limit in bytes of one upstream file of `source`."""
    mb = override_mb if override_mb is not None else MAX_FILE_MB.get(source, DEFAULT_MAX_FILE_MB)
    return int(mb * 2**20)


class ConfigError(ValueError):
    """A REGIME_* setting has a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source: str
    mirror_dir: Path
    alert_to: tuple[str, ...]
    zscore_alert: float
    since_years: int
    indexes: tuple[str, ...]
    freshness_sessions: int
    gap_tolerance_sessions: int
    http_timeout: float
    smtp_conn_id: str
    watchlist: tuple[str, ...]
    occ_lookback_sessions: int
    cftc_markets: tuple[str, ...]
    cftc_first_year: int
    cftc_via: str
    etf_tickers: tuple[str, ...]
    small_caps: tuple[str, ...]
    large_caps: tuple[str, ...]
    live_base_url: str | None
    yahoo_indexes: tuple[tuple[str, str], ...] = ()  # (Yahoo symbol, symbol in the lake), e.g. ("^SP600", "SP600")
    duckdb_memory_limit: str = "1GB"  # DuckDB's buffer pool while building (docs/performance.md: peak memory)
    smtp_connect_timeout: float = 30.0  # seconds: alert mail, connect phase (docs/alerts.md: SMTP timeouts)
    smtp_send_timeout: float = 120.0  # seconds: alert mail, the whole transaction once connected
    max_file_mb: float | None = None  # REGIME_MAX_FILE_MB: one limit for every source; None: MAX_FILE_MB per source
    publish_uri: str | None = None  # REGIME_PUBLISH_URI: also upload each published build there (regime.objectstore)
    lake_uri: str | None = None  # REGIME_LAKE_URI: the lake in a bucket (regime.lake_store); None: REGIME_DATA_DIR's

    def max_file_bytes(self, source: str) -> int:
        """The size limit in bytes of one upstream file of `source` (REGIME_MAX_FILE_MB or the source's default)."""
        return max_file_bytes(source, self.max_file_mb)

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


def _upper(value: str) -> tuple[str, ...]:
    return tuple(part.upper() for part in _list(value))


# Symbols and tickers become file names, URL parts and lake partition names: letters, digits and . ^ - only.
SYMBOL = re.compile(r"[A-Z0-9^][A-Z0-9.^-]{0,15}")
MARKET_CODE = re.compile(r"[0-9A-Z+]{1,12}")  # CFTC contract market codes, e.g. 13874A


def _symbols(name: str, default: str, pattern: re.Pattern = SYMBOL,
             allowed: str = "letters, digits, '.', '^' and '-', at most 16 characters") -> tuple[str, ...]:
    """A comma-separated list of symbols, upper-cased, each once, every one matching `pattern` (ConfigError)."""
    values = tuple(dict.fromkeys(_upper(os.environ.get(name, default))))
    bad = [v for v in values if not pattern.fullmatch(v)]
    if bad:
        raise ConfigError(f"{name}: {bad[0]!r} is not a valid symbol (expected {allowed})")
    return values


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _base_url(value: str | None) -> str | None:
    """REGIME_LIVE_BASE_URL: http(s), and no user:password@ in it (every URL is logged, kept in the raw metadata
    and quoted in error mails). The value is not repeated in the error: it may hold a password."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("REGIME_LIVE_BASE_URL: expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("REGIME_LIVE_BASE_URL holds credentials (user:password@host): URLs are written to logs, "
                          "raw metadata and error mails; use a proxy that needs none in its URL")
    return value


def _yahoo_indexes(indexes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """REGIME_YAHOO_INDEXES: `YAHOO_SYMBOL` or `YAHOO_SYMBOL=NAME`, comma-separated; the lake name defaults to the
    symbol without its leading '^' (as regime.sources.yahoo.canonical). Empty (the default) leaves the optional
    Yahoo provider off."""
    pairs = []
    for entry in _list(os.environ.get("REGIME_YAHOO_INDEXES", "")):
        symbol, _, name = (part.strip().upper() for part in entry.partition("="))
        name = name or symbol.removeprefix("^")
        for value in (symbol, name):
            if not SYMBOL.fullmatch(value):
                raise ConfigError(f"REGIME_YAHOO_INDEXES: {value!r} is not a valid symbol (expected letters, digits, "
                                  "'.', '^' and '-', at most 16 characters; YAHOO_SYMBOL or YAHOO_SYMBOL=NAME)")
        if name in indexes:
            raise ConfigError(f"REGIME_YAHOO_INDEXES: {name!r} is also a Cboe series (REGIME_INDEXES): one source per "
                              f"series; give the Yahoo one another name, e.g. {symbol}={name}Y")
        pairs.append((symbol, name))
    pairs = list(dict.fromkeys(pairs))
    names = [name for _, name in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"REGIME_YAHOO_INDEXES: more than one series named {twice[0]!r}")
    return tuple(pairs)


def _number(name: str, default: str, kind: type):
    raw = os.environ.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def _seconds(name: str, default: str) -> float:
    value = _number(name, default, float)
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={value!r}: expected a number of seconds above 0")
    return value


MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def _memory(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip()
    if not MEMORY.match(value):
        raise ConfigError(f"{name}={value!r}: expected an amount of memory such as 1GB, 512MB or 2GiB")
    return value


def _publish_uri() -> str | None:
    """REGIME_PUBLISH_URI, checked (regime.objectstore.parse_location); credentials come from the environment."""
    raw = os.environ.get("REGIME_PUBLISH_URI", "").strip()
    if not raw:
        return None
    from regime.objectstore import LocationError, parse_location

    try:
        return parse_location(raw).uri
    except LocationError as exc:
        raise ConfigError(f"REGIME_PUBLISH_URI: {exc}") from None


def _lake_uri() -> str | None:
    """REGIME_LAKE_URI, checked: `s3://bucket/prefix` only (unset: the lake is REGIME_DATA_DIR's folders)."""
    raw = os.environ.get("REGIME_LAKE_URI", "").strip()
    if not raw:
        return None
    from regime.objectstore import LocationError, parse_location

    try:
        location = parse_location(raw)
    except LocationError as exc:
        raise ConfigError(f"REGIME_LAKE_URI: {exc}") from None
    if not location.is_s3:
        raise ConfigError("REGIME_LAKE_URI: expected s3://bucket/prefix; a local lake is REGIME_DATA_DIR's (leave "
                          "REGIME_LAKE_URI unset)")
    return location.uri


def _max_file_mb() -> float | None:
    raw = os.environ.get("REGIME_MAX_FILE_MB", "").strip()
    if not raw:
        return None
    value = _number("REGIME_MAX_FILE_MB", raw, float)
    if not 0 < value < float("inf"):
        raise ConfigError(f"REGIME_MAX_FILE_MB={raw!r}: expected a positive number of MiB")
    return value


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    env = os.environ.get
    source = env("REGIME_SOURCE", "mirror").strip().lower()
    if source not in {"mirror", "live"}:
        raise ConfigError(f"REGIME_SOURCE={source!r}: expected 'mirror' or 'live'")
    mirror_dir = Path(env("REGIME_MIRROR_DIR", str(PROJECT_DIR / "include" / "sample" / "mirror")))
    data_dir = Path(env("REGIME_DATA_DIR", str(PROJECT_DIR / "data")))
    indexes = _symbols("REGIME_INDEXES", "RUT,SPX,NDX,DJX,VIX,RVX")
    return Settings(
        data_dir=data_dir.expanduser().resolve(),
        source=source,
        mirror_dir=mirror_dir.expanduser().resolve(),
        alert_to=_list(env("REGIME_ALERT_TO", "regime-alerts@localhost")),
        zscore_alert=_number("REGIME_ZSCORE_ALERT", "3.0", float),
        since_years=_number("REGIME_SINCE_YEARS", "10", int),
        indexes=indexes,
        freshness_sessions=_number("REGIME_FRESHNESS_SESSIONS", "3", int),
        gap_tolerance_sessions=_number("REGIME_GAP_TOLERANCE_SESSIONS", "2", int),
        http_timeout=_number("REGIME_HTTP_TIMEOUT", "30", float),
        smtp_conn_id=env("REGIME_SMTP_CONN_ID", "smtp_default"),
        watchlist=_symbols("REGIME_WATCHLIST", "IWM,SPY,QQQ,NVDA,TSLA,AAPL"),
        occ_lookback_sessions=_number("REGIME_OCC_LOOKBACK_SESSIONS", "10", int),
        cftc_markets=_symbols("REGIME_CFTC_MARKETS", "13874A,239742,209742", MARKET_CODE,
                              "letters, digits and '+', at most 12 characters"),
        cftc_first_year=_number("REGIME_CFTC_FIRST_YEAR", "2019", int),
        cftc_via=_choice("REGIME_CFTC_VIA", "zip", ("zip", "api")),
        etf_tickers=_symbols("REGIME_ETF_TICKERS", "IWM,IJR,VTWO,SPY,IVV,QQQ"),
        small_caps=_symbols("REGIME_SMALL_CAPS", "IWM,IJR,VTWO"),
        large_caps=_symbols("REGIME_LARGE_CAPS", "SPY,IVV,QQQ"),
        live_base_url=_base_url(env("REGIME_LIVE_BASE_URL") or None),
        yahoo_indexes=_yahoo_indexes(indexes),
        duckdb_memory_limit=_memory("REGIME_DUCKDB_MEMORY_LIMIT", "1GB"),
        smtp_connect_timeout=_seconds("REGIME_SMTP_CONNECT_TIMEOUT", "30"),
        smtp_send_timeout=_seconds("REGIME_SMTP_SEND_TIMEOUT", "120"),
        max_file_mb=_max_file_mb(),
        publish_uri=_publish_uri(),
        lake_uri=_lake_uri(),
    )
