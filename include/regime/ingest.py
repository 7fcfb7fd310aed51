"""Ingest: obtain each upstream file (mirror or live), land the raw bytes, parse, upsert canonical Parquet.

Every file of a source is parsed before anything canonical is written: one malformed file fails that
source's ingest (its bytes quarantined, the error naming source, file and problem) and leaves its canonical
data as it was. A file the upstream does not have (absent from the mirror, HTTP 404) is skipped with a
warning. A file refused unread (a mirror link leading outside the mirror or broken, not a regular file, over the
source's size limit REGIME_MAX_FILE_MB) fails the ingest like a malformed one, but nothing of it is landed in raw/
or kept in quarantine/.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from regime import datasets, lake, state
from regime.config import Settings
from regime.datasets import Dataset
from regime.sources import cboe, cboe_putcall, cftc, etf, occ, yahoo
from regime.sources.errors import SourceError, SourceMissing
from regime.sources.fetch import Fetched, fetch_http, fetch_mirror

log = logging.getLogger(__name__)


# the column naming each parsed row's upstream file (where it was fetched from): revisions name it; not stored
FILE_COLUMN = "_file"


class IngestError(RuntimeError):
    """One or more upstream files were unusable; the message names each file and its problem."""


@dataclass(frozen=True)
class Item:
    """One upstream file to obtain and parse."""

    label: str  # what it is, for messages: "RUT", "IWM 2024-07-16", "2024"
    folder: str  # mirror folder, e.g. "cboe"
    name: str  # file name under the folder (may hold a sub-folder, e.g. "2024-07-16/IWM.csv")
    url: str  # live URL
    parse: Callable[[bytes, str], pd.DataFrame]


@dataclass
class IngestResult:
    dataset: str
    as_of: date
    rows: dict[str, int] = field(default_factory=dict)  # partition value -> rows now in the lake
    files: int = 0
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_xcom(self) -> dict:
        return {"dataset": self.dataset, "as_of": self.as_of.isoformat(), "rows": self.rows, "files": self.files,
                "missing": self.missing, "skipped": self.skipped}


def live_url(settings: Settings, url: str) -> str:
    """The publisher's URL, or the same path on REGIME_LIVE_BASE_URL when that is set."""
    if not settings.live_base_url:
        return url
    base = urlsplit(settings.live_base_url)
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def obtain(settings: Settings, item: Item, source: str) -> Fetched:
    if settings.source == "mirror":
        return fetch_mirror(settings.mirror_dir, item.folder, item.name, source,
                            max_bytes=settings.max_file_bytes(source))
    if not item.url:
        raise SourceError(source, f"{item.folder}/{item.name}", "no live URL for this file: use mirror mode")
    return fetch_http(live_url(settings, item.url), item.name, source, timeout=settings.http_timeout,
                      max_bytes=settings.max_file_bytes(source))


def collect(settings: Settings, as_of: date, source: str, items: Iterable[Item], result: IngestResult,
            skip: tuple[type[SourceError], ...] = ()) -> list[pd.DataFrame]:
    """Obtain, land and parse every item; raise IngestError naming every unusable file."""
    frames, errors = [], []
    items = list(items)
    for n, item in enumerate(items, start=1):
        try:
            fetched = obtain(settings, item, source)
        except SourceMissing as exc:
            log.warning("skipping %s: %s", item.label, exc)
            result.missing.append(item.label)
            continue
        except SourceError as exc:
            errors.append(str(exc))
            continue
        lake.land_raw(settings.raw_dir, source, as_of, item.name, fetched.data, fetched.location,
                      fetched.fetched_at)
        result.files += 1
        try:
            frames.append(item.parse(fetched.data, fetched.location).assign(**{FILE_COLUMN: fetched.location}))
        except skip as exc:
            log.info("no data for %s: %s", item.label, exc.problem)
            result.skipped.append(item.label)
        except SourceError as exc:
            where = lake.quarantine(settings.quarantine_dir, source, as_of, item.name, fetched.data, str(exc))
            errors.append(f"{exc} (bytes kept in {where})")
        if n % 100 == 0 or n == len(items):
            log.info("%s: %d/%d files obtained", source, n, len(items))
    if errors:
        raise IngestError(f"{source} ingest failed; nothing was written to the lake:\n  " + "\n  ".join(errors))
    return frames


def store(settings: Settings, dataset: Dataset, frames: list[pd.DataFrame], result: IngestResult,
          visible: Callable[[pd.DataFrame], pd.Series]) -> IngestResult:
    """Upsert the rows known on the as-of date (`visible`) into the dataset's partitions."""
    if not frames:
        return result
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[visible(frame)]
    duplicated = frame.duplicated([dataset.partition, *dataset.key], keep=False)
    if duplicated.any():
        sample = frame.loc[duplicated, [dataset.partition, *dataset.key]].head(3).to_dict("records")
        raise IngestError(f"{dataset.name}: the same key arrived in more than one file, e.g. {sample}")
    files = frame.set_index([dataset.partition, dataset.key[0]])[FILE_COLUMN]

    def record(value: str, changes: pd.DataFrame) -> None:
        # a removed row names every file of its series: the files that no longer hold it
        every = "; ".join(sorted(files.loc[value].unique()))
        named = [files.get((value, day), every) if kind == "revised" else every
                 for day, kind in zip(changes[dataset.key[0]], changes["kind"], strict=True)]
        state.record_revisions(settings.state_dir, dataset.name, value, result.as_of.isoformat(), changes,
                               pd.Series(named, index=changes.index))
        log.warning("%s %s: %d number(s) revised, %d row(s) removed by the upstream file(s); recorded in "
                    "meta.revisions", dataset.name, value, int((changes["kind"] == "revised").sum()),
                    int((changes["kind"] == "removed").sum()))

    result.rows = dataset.write(settings.lake_dir, frame, on_revisions=record)
    for value, rows in result.rows.items():
        log.info("%s %s: %d rows in the lake", dataset.name, value, rows)
    return result


def _until(column: str, as_of: date) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda frame: frame[column] <= as_of


# --------------------------------------------------------------------------- Index prices: Cboe, optionally Yahoo


def _cboe_items(settings: Settings) -> list[Item]:
    def parser(symbol: str):
        return lambda data, location: cboe.parse(data, symbol, location).assign(symbol=symbol)

    return [Item(symbol, "cboe", cboe.file_name(symbol), cboe.url(symbol), parser(symbol))
            for symbol in settings.indexes]


def _yahoo_items(settings: Settings, as_of: date) -> list[Item]:
    """The optional Yahoo chart series (REGIME_YAHOO_INDEXES), landed under the lake name, e.g. ^SP600 as SP600."""
    def parser(symbol: str, name: str):
        return lambda data, location: yahoo.parse(data, symbol, location).assign(symbol=name)

    return [Item(name if name == yahoo.canonical(symbol) else f"{name} ({symbol})", yahoo.FOLDER,
                 yahoo.file_name(symbol), yahoo.url(symbol, as_of), parser(symbol, name))
            for symbol, name in settings.yahoo_indexes]


def ingest_cboe(settings: Settings, as_of: date) -> IngestResult:
    """The Cboe history files only (see ingest_index_prices for the dataset's whole ingest)."""
    result = IngestResult(dataset=datasets.INDEX_PRICES.name, as_of=as_of)
    frames = collect(settings, as_of, cboe.SOURCE, _cboe_items(settings), result)
    if not frames:
        raise IngestError(f"cboe: none of {list(settings.indexes)} found in the {settings.source} source")
    return store(settings, datasets.INDEX_PRICES, frames, result, _until("date", as_of))


def ingest_index_prices(settings: Settings, as_of: date) -> IngestResult:
    """Cboe's history files and, when REGIME_YAHOO_INDEXES names any, the Yahoo chart series (raw bytes under
    raw/yahoo/). Every file of both is parsed before anything is written: one unusable file fails the whole
    ingest, naming it, and the lake keeps what it had. A Yahoo series Yahoo does not have (HTTP 404, absent from
    the mirror) is skipped with a warning, like a Cboe file."""
    result = IngestResult(dataset=datasets.INDEX_PRICES.name, as_of=as_of)
    frames, errors = [], []
    for source, items in ((cboe.SOURCE, _cboe_items(settings)), (yahoo.SOURCE, _yahoo_items(settings, as_of))):
        if not items:
            continue
        try:
            found = collect(settings, as_of, source, items, result)
        except IngestError as exc:
            errors.append(str(exc))
            continue
        if source == cboe.SOURCE and not found:
            errors.append(f"cboe: none of {list(settings.indexes)} found in the {settings.source} source")
        frames += found
    if errors:
        raise IngestError("\n".join(errors))
    return store(settings, datasets.INDEX_PRICES, frames, result, _until("date", as_of))


# --------------------------------------------------------------------------- OCC options volume


def _occ_days(settings: Settings, as_of: date, days: list[date] | None = None) -> list[date]:
    """Days to ask OCC for: in mirror mode every NYSE session with a day folder up to the as-of date; live,
    the sessions of the look-back window. Days already in the lake for every underlying are not fetched again.
    (OCC has nothing for other days: it answers 'No record(s) found'.)"""
    from regime.calendar import is_session, sessions_until

    if days is not None:
        days = [d for d in days if d <= as_of and is_session(d)]
    elif settings.source == "mirror":
        folder = settings.mirror_dir / occ.FOLDER
        pattern = re.compile(r"^\d{4}-\d{2}-\d{2}$")
        days = sorted(date.fromisoformat(p.name) for p in folder.glob("*") if p.is_dir() and pattern.match(p.name))
        days = [d for d in days if d <= as_of and is_session(d)]
    else:
        days = sessions_until(as_of, settings.occ_lookback_sessions)
    have = _dates_in_lake(settings, datasets.OPTIONS_VOLUME, settings.watchlist)
    return [d for d in days if d not in have]


def _dates_in_lake(settings: Settings, dataset: Dataset, values: Iterable[str]) -> set[date]:
    """Dates present in the lake for every one of `values` (partition values)."""
    common = None
    for value in values:
        path = dataset.partition_path(settings.lake_dir, value)
        found = set(pd.read_parquet(path, columns=[dataset.key[0]])[dataset.key[0]]) if path.exists() else set()
        common = found if common is None else common & found
    return common or set()


def ingest_occ(settings: Settings, as_of: date, days: list[date] | None = None) -> IngestResult:
    """OCC volume for `days` (default: see _occ_days), skipping days the lake already has."""
    result = IngestResult(dataset=datasets.OPTIONS_VOLUME.name, as_of=as_of)
    days = _occ_days(settings, as_of, days)

    def parser(underlying: str, day: date):
        return lambda data, location: occ.parse(data, location, underlying, day)

    items = [Item(f"{u} {d.isoformat()}", occ.FOLDER, occ.file_name(u, d), occ.url(u, d), parser(u, d))
             for d in days for u in settings.watchlist]
    log.info("occ: %d day(s) to fetch for %d underlyings", len(days), len(settings.watchlist))
    frames = collect(settings, as_of, occ.SOURCE, items, result, skip=(occ.NoTradingData, occ.NotYetPublished))
    _check_sessions_have_data(result, as_of)
    return store(settings, datasets.OPTIONS_VOLUME, frames, result, _until("date", as_of))


def _check_sessions_have_data(result: IngestResult, as_of: date) -> None:
    """OCC's 'no records' answer is normal on holidays; on an NYSE session before the as-of date it is not."""
    from regime.calendar import is_session

    bad = [label for label in result.skipped
           if (day := date.fromisoformat(label.split()[-1])) < as_of and is_session(day)]
    if bad:
        raise IngestError(f"occ: no volume published for NYSE session(s): {bad[:5]}")


# --------------------------------------------------------------------------- CFTC Traders in Financial Futures


def _cftc_years(settings: Settings, as_of: date) -> list[int]:
    if settings.source == "mirror":
        pattern = re.compile(r"^fut_fin_txt_(\d{4})\.zip$")
        years = sorted(int(m.group(1)) for p in (settings.mirror_dir / "cftc").glob("*.zip")
                       if (m := pattern.match(p.name)))
        return [y for y in years if y <= as_of.year]
    # live: complete years are fetched once; the current year every run (the CFTC rewrites it weekly)
    # a landed zip's .meta.json, written after it (what regime.lake_store pulls of the earlier as-of dates)
    landed = {int(m.group(1)) for p in (settings.raw_dir / cftc.SOURCE).glob("as_of=*/fut_fin_txt_*.zip.meta.json")
              if (m := re.search(r"(\d{4})\.zip\.meta\.json$", p.name))}
    return [y for y in range(settings.cftc_first_year, as_of.year + 1) if y == as_of.year or y not in landed]


def ingest_cftc(settings: Settings, as_of: date) -> IngestResult:
    """The yearly zips, or in live mode with REGIME_CFTC_VIA=api one query of the public reporting API
    (dataset gpe5-46if) for the configured markets from REGIME_CFTC_FIRST_YEAR to the as-of date."""
    result = IngestResult(dataset=datasets.CFTC_TFF.name, as_of=as_of)

    def parse(data: bytes, location: str) -> pd.DataFrame:
        return cftc.parse_zip(data, location, markets=settings.cftc_markets)

    def parse_api(data: bytes, location: str) -> pd.DataFrame:
        return cftc.parse_api(data, location, markets=settings.cftc_markets, limit=cftc.API_LIMIT)

    if settings.source == "live" and settings.cftc_via == "api":
        url = cftc.api_url(settings.cftc_markets, start=date(settings.cftc_first_year, 1, 1), end=as_of)
        items = [Item("api", "cftc", f"{cftc.DATASET}.json", url, parse_api)]
    else:
        items = [Item(str(year), "cftc", cftc.file_name(year), cftc.zip_url(year), parse)
                 for year in _cftc_years(settings, as_of)]
    frames = collect(settings, as_of, cftc.SOURCE, items, result)
    # a report is in the lake only once it was public on the as-of date
    return store(settings, datasets.CFTC_TFF, frames, result, _until("release_date", as_of))


# --------------------------------------------------------------------------- ETF NAV and shares outstanding


def ingest_etf(settings: Settings, as_of: date) -> IngestResult:
    """Each ticker from its issuer's file (etf.LISTINGS): live, over HTTP where the issuer has a public GET URL, a
    mirror-only ticker (QQQ, VTWO) from the mirror folder when an operator placed its file there; in mirror mode
    the issuer's file or else the SSGA-layout file (etf.locate). A ticker not obtained is a warning naming the side
    of the flow spread that lacks it; no ticker at all fails the ingest like Cboe's (IngestError), except for a
    mirror with no etf/ folder, which carries no ETF data (the reference mirror): one warning."""
    result = IngestResult(dataset=datasets.ETF_NAV.name, as_of=as_of)

    def parser(ticker: str):
        return lambda data, location: etf.parse(data, location, ticker)

    def item(ticker: str) -> Item:
        live = settings.source == "live" and etf.live_url(ticker)
        option = etf.listing(ticker) if live else etf.locate(settings.mirror_dir, ticker)
        return Item(ticker, etf.folder(ticker, option.layout), etf.file_name(ticker, option.layout),
                    etf.live_url(ticker) or "", parser(ticker))

    items = [item(t) for t in settings.etf_tickers]
    frames = []
    if settings.source == "live":  # a mirror-only ticker: read from the mirror folder if its file is there
        offline = [i for i in items if not i.url]
        for i in offline:
            if not (settings.mirror_dir / i.folder / i.name).exists():
                log.warning("etf: %s has no public live source (%s): place %s/%s in REGIME_MIRROR_DIR; skipped",
                            i.label, etf.url(i.label), i.folder, i.name)
                result.missing.append(i.label)
        mirrored = [i for i in offline if i.label not in result.missing]
        if mirrored:
            frames += collect(replace(settings, source="mirror"), as_of, etf.SOURCE, mirrored, result)
        items = [i for i in items if i.url]
    frames += collect(settings, as_of, etf.SOURCE, items, result)
    if not frames:
        where = settings.mirror_dir / "etf"
        if settings.source == "mirror" and not where.exists():
            log.warning("etf: the mirror %s has no etf/ folder: no ETF data in it, skipped", settings.mirror_dir)
            return result
        raise IngestError(f"etf: none of {list(settings.etf_tickers)} found in the {settings.source} source "
                          f"(missing: {', '.join(result.missing) or 'none'})")
    _warn_spread_gaps(settings, result)
    return store(settings, datasets.ETF_NAV, frames, result, _until("date", as_of))


def _warn_spread_gaps(settings: Settings, result: IngestResult) -> None:
    """One warning per ticker not obtained, naming the side of the small-large flow spread it leaves short."""
    for ticker in result.missing:
        side = "small-cap" if ticker in settings.small_caps else "large-cap" if ticker in settings.large_caps \
            else None
        if side:
            log.warning("etf: %s not obtained: the %s side of the ETF flow spread lacks it", ticker, side)
        else:
            log.warning("etf: %s not obtained", ticker)


# --------------------------------------------------------------------------- Cboe put/call volume history


def ingest_putcall(settings: Settings, as_of: date) -> IngestResult:
    """Cboe's put/call volume history files, one per product (total, equity, index; mirror `cboe/putcall/`). Every
    file is parsed before anything is written; a product Cboe (or the mirror) does not have is skipped with a
    warning; none at all is a warning too, not a failure: the archive ended in 2019 and no session needs it."""
    result = IngestResult(dataset=datasets.OPTIONS_PUTCALL.name, as_of=as_of)

    def parser(product: str):
        return lambda data, location: cboe_putcall.parse(data, product, location).assign(product=product)

    items = [Item(product, cboe_putcall.FOLDER, cboe_putcall.file_name(product), cboe_putcall.url(product),
                  parser(product)) for product in cboe_putcall.PRODUCTS]
    frames = collect(settings, as_of, cboe_putcall.SOURCE, items, result)
    if not frames:
        log.warning("cboe_putcall: none of %s found in the %s source: nothing ingested",
                    list(cboe_putcall.PRODUCTS), settings.source)
        return result
    return store(settings, datasets.OPTIONS_PUTCALL, frames, result, _until("date", as_of))


INGESTERS = {
    datasets.INDEX_PRICES.name: ingest_index_prices,
    datasets.OPTIONS_VOLUME.name: ingest_occ,
    datasets.CFTC_TFF.name: ingest_cftc,
    datasets.ETF_NAV.name: ingest_etf,
    datasets.OPTIONS_PUTCALL.name: ingest_putcall,
}
