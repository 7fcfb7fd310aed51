"""Yahoo Finance chart API (v8): daily bars of index series Cboe does not publish, e.g. the S&P SmallCap 600.

An OPTIONAL provider, off unless `REGIME_YAHOO_INDEXES` names series (docs/sources.md): the endpoint is
unofficial and Yahoo's data are for personal use. It is the endpoint the yfinance library wraps, spoken to
directly through `fetch_http` so that the JSON is landed unchanged like every other upstream file:

    https://query2.finance.yahoo.com/v8/finance/chart/%5ESP600?period1=...&period2=...&interval=1d&includePrePost=false

    {"chart":{"result":[{"meta":{"symbol":"^SP600","exchangeName":"SNP","instrumentType":"INDEX",
        "regularMarketTime":1689369274,"exchangeTimezoneName":"America/New_York","gmtoffset":-14400,"priceHint":2,
        "currentTradingPeriod":{"regular":{"start":1689341400,"end":1689364800,...},...},"dataGranularity":"1d",...},
      "timestamp":[1687267800,...],
      "indicators":{"quote":[{"open":[...],"high":[...],"low":[...],"close":[...],"volume":[...]}],
                    "adjclose":[{"adjclose":[...]}]}}],
     "error":null}}

Quirks of the real answers, and what `parse` does with them:

* a bar's timestamp is the UTC second of its session's open (09:30 New York: 13:30 UTC in summer, 14:30 in
  winter); the trading date is taken in `meta.exchangeTimezoneName` (an IANA zone, so DST is followed), never
  with the fixed `meta.gmtoffset`, which is the offset when Yahoo answered and misdates midnight-stamped bars
  on the other side of a DST change. A daily bar stamped 22:00 or 23:00 local on the hour is Yahoo's DST slip
  for midnight of the next day (yfinance's `fix_Yahoo_dst_issue`): it is dated the next day;
* prices are float32 noise (`9424.01953125`): rounded to `meta.priceHint` decimals (2 for indexes), which gives
  back the published cents;
* holidays and partial data come as bars whose values are all `null`: dropped; a 0 or null open/high/low next
  to a real close is Yahoo's missing value: NULL;
* while a session is open (`meta.regularMarketTime` before `currentTradingPeriod.regular.end`) the bar of that
  session is provisional: dropped. Yahoo may also append the live price as a separate last bar stamped
  `regularMarketTime` on the same date as the session's bar (yfinance's `fix_Yahoo_returning_live_separate`):
  it is merged into that bar (high/low widened, close replaced);
* errors come as `{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may
  be delisted"}}}` (with HTTP 404: then the fetch reports the symbol missing) or `{"finance":{"error":...}}`;
  a consent or "will be right back" HTML page may come with HTTP 200; a 429 is retried by `fetch_http`.

Anything else unexpected (not JSON, truncated JSON, no bars, every bar null, arrays of different lengths, a
non-number, a close <= 0, a repeated timestamp or trading date, a bar after today, another symbol's answer,
bars that are not daily) raises `SourceError` naming the file and the problem.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from regime.sources.errors import SourceError
from regime.sources.fetch import refuse_future, text_of

log = logging.getLogger(__name__)

SOURCE = "yahoo"
FOLDER = "yahoo/chart"  # mirror: yahoo/chart/<YAHOO SYMBOL>.json, e.g. yahoo/chart/^SP600.json
URL = ("https://query2.finance.yahoo.com/v8/finance/chart/{symbol}"
       "?period1={period1}&period2={period2}&interval=1d&includePrePost=false")
DEFAULT_SYMBOLS = ("^SP600",)  # the S&P SmallCap 600: Cboe publishes no history file for it
FIRST_DAY = date(1927, 1, 1)  # period1: as far back as yfinance's "max" reaches (Yahoo answers from the first bar)
COLUMNS = ["date", "open", "high", "low", "close"]
PRICES = ["open", "high", "low", "close"]
MAX_PRICE_HINT = 8
MAX_SECONDS = 2**33  # |UTC seconds| of a timestamp: about 272 years either side of 1970


def canonical(symbol: str) -> str:
    """The lake's name for a Yahoo symbol: without the leading '^' of Yahoo's index symbols (^SP600 -> SP600)."""
    return symbol.removeprefix("^")


def file_name(symbol: str) -> str:
    return f"{symbol}.json"


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def url(symbol: str, as_of: date) -> str:
    """The chart query for the daily bars up to the as-of date: from FIRST_DAY to midnight UTC after the as-of
    date (period2 is exclusive; a New York session opens at 13:30 or 14:30 UTC of its own date)."""
    return URL.format(symbol=quote(symbol, safe=""), period1=_epoch(FIRST_DAY),
                      period2=_epoch(as_of + timedelta(days=1)))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _error_text(envelope) -> str | None:
    """`code: description` of a Yahoo error envelope ({"result": null, "error": {...}}), or None."""
    if not isinstance(envelope, dict) or envelope.get("error") in (None, "", {}):
        return None
    error = envelope["error"]
    if isinstance(error, dict):
        code, description = error.get("code"), error.get("description")
        return ": ".join(str(part) for part in (code, description) if part) or json.dumps(error)[:200]
    return str(error)[:200]


def _number_or_none(value) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _plausible_second(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SECONDS


def _trading_dates(stamps: list[int], tz: ZoneInfo) -> list[date]:
    local = pd.to_datetime(pd.Series(stamps, dtype="int64"), unit="s", utc=True).dt.tz_convert(tz)
    slip = (local.dt.minute == 0) & (local.dt.second == 0) & local.dt.hour.isin([22, 23])
    shifted = local + pd.to_timedelta(np.where(slip, 24 - local.dt.hour, 0), unit="h")
    return list(shifted.dt.date)


def _open_session(meta: dict, tz: ZoneInfo) -> date | None:
    """The date of the regular session that had not closed when Yahoo answered, or None (all closed)."""
    period = meta.get("currentTradingPeriod")
    regular = period.get("regular") if isinstance(period, dict) else None
    if not isinstance(regular, dict):
        return None
    start, end, now = regular.get("start"), regular.get("end"), meta.get("regularMarketTime")
    if not all(_plausible_second(v) for v in (start, end, now)) or now >= end:
        return None
    return datetime.fromtimestamp(start, tz).date()


def parse(data: bytes, symbol: str, location: str, today: date | None = None) -> pd.DataFrame:
    """Parse one chart answer into (date, open, high, low, close) rows, or raise SourceError naming the problem.

    `today` (default: today in the exchange's time zone) bounds the dates: a bar after it is an error."""

    def fail(problem: str) -> SourceError:
        return SourceError(SOURCE, location, problem)

    text = text_of(data, fail, "chart JSON (a consent, sign-in or 'will be right back' page?)", encoding="utf-8")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON: {exc.msg} at character {exc.pos} of {len(text)} (truncated download?)") from None
    except ValueError as exc:
        raise fail(f"not valid JSON: {exc}") from None

    if not isinstance(doc, dict) or not isinstance(doc.get("chart"), dict):
        error = _error_text(doc.get("finance")) if isinstance(doc, dict) else None
        if error:
            raise fail(f"Yahoo answered with an error: {error}")
        shape = f"keys {sorted(doc)[:5]}" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        raise fail(f"not a chart answer: expected {{\"chart\": {{...}}}}, got {shape}")
    chart = doc["chart"]
    error = _error_text(chart)
    if error:
        raise fail(f"Yahoo answered with chart.error {error}")
    results = chart.get("result")
    if not results:
        raise fail("chart.result is empty and chart.error is null: no series in the answer")
    if not isinstance(results, list) or not isinstance(results[0], dict):
        raise fail("chart.result is not a list of series")
    if len(results) != 1:
        raise fail(f"chart.result holds {len(results)} series, expected 1")
    result = results[0]
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}

    answered = meta.get("symbol")
    if isinstance(answered, str) and answered.upper() != symbol.upper():
        raise fail(f"the answer is for {answered!r}, not {symbol!r}")
    if meta.get("dataGranularity", "1d") != "1d":
        raise fail(f"bars of {meta['dataGranularity']!r}, expected daily bars ('1d')")
    tz_name = meta.get("exchangeTimezoneName")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise fail(f"meta.exchangeTimezoneName {tz_name!r} is not a known time zone: the trading date of a bar "
                   "cannot be told") from None

    stamps = result.get("timestamp")
    if not stamps:
        raise fail("no bars: the answer has no timestamps (no data in the requested range?)")
    if not isinstance(stamps, list) or not all(_plausible_second(t) for t in stamps):
        bad = next((t for t in stamps if not _plausible_second(t)), None) if isinstance(stamps, list) else stamps
        raise fail(f"timestamp is not a list of integer UTC seconds: {str(bad)[:40]!r}")
    dates = _trading_dates(stamps, tz)
    quotes = (result.get("indicators") or {}).get("quote") if isinstance(result.get("indicators"), dict) else None
    quote_ = quotes[0] if isinstance(quotes, list) and quotes else None
    if not isinstance(quote_, dict) or quote_.get("close") is None:
        raise fail("no indicators.quote[0].close in the answer")
    values = {}
    for name in PRICES:
        column = quote_.get(name, [None] * len(stamps))
        if column is None:
            column = [None] * len(stamps)
        if not isinstance(column, list) or len(column) != len(stamps):
            size = len(column) if isinstance(column, list) else type(column).__name__
            raise fail(f"indicators.quote[0].{name} has {size} values for {len(stamps)} timestamps "
                       "(truncated or inconsistent answer)")
        bad = next((i for i, v in enumerate(column) if not _number_or_none(v)), None)
        if bad is not None:
            raise fail(f"bar {bad} ({dates[bad].isoformat()}): {name} {repr(column[bad])[:40]} is not a number")
        values[name] = np.array([np.nan if v is None else float(v) for v in column], dtype="float64")

    frame = pd.DataFrame({"stamp": stamps, "date": dates, **values})
    repeated = frame["stamp"].duplicated(keep=False)
    if repeated.any():
        raise fail(f"duplicated timestamps: {sorted(set(frame.loc[repeated, 'stamp']))[:5]} "
                   f"({sorted({d.isoformat() for d in frame.loc[repeated, 'date']})[:5]})")
    frame = frame.sort_values("stamp", kind="stable").reset_index(drop=True)

    empty = frame["close"].isna()
    if empty.all():
        raise fail(f"no bar has a close: all {len(frame)} bars are null")
    if empty.any():
        log.info("%s: %s: %d bar(s) without a close dropped (holidays, partial data), e.g. %s", SOURCE, location,
                 int(empty.sum()), frame.loc[empty, "date"].iloc[0].isoformat())
        frame = frame[~empty].reset_index(drop=True)

    live = meta.get("regularMarketTime")
    if len(frame) >= 2 and frame["date"].iloc[-1] == frame["date"].iloc[-2] and frame["stamp"].iloc[-1] == live:
        last, session = frame.iloc[-1], frame.index[-2]  # the live price appended as a separate bar
        frame.loc[session, "high"] = np.nanmax([frame.loc[session, "high"], last["high"], last["close"]])
        frame.loc[session, "low"] = np.nanmin([frame.loc[session, "low"], last["low"], last["close"]])
        frame.loc[session, "close"] = last["close"]
        frame = frame.iloc[:-1]
    twice = frame["date"].duplicated(keep=False)
    if twice.any():
        days = sorted({d.isoformat() for d in frame.loc[twice, "date"]})
        raise fail(f"more than one bar for trading date(s) {days[:5]}")

    session = _open_session(meta, tz)
    if session is not None and frame["date"].iloc[-1] == session:
        log.info("%s: %s: the %s session was still open when Yahoo answered: its bar is left out", SOURCE, location,
                 session.isoformat())
        frame = frame.iloc[:-1]
        if frame.empty:
            raise fail(f"the only bar is the one of the {session.isoformat()} session, still open")

    if (frame["close"] <= 0).any():
        i = int((frame["close"] <= 0).to_numpy().argmax())
        raise fail(f"{frame['date'].iloc[i].isoformat()}: close {frame['close'].iloc[i]} is not positive")
    for name in ("open", "high", "low"):
        frame.loc[frame[name] <= 0, name] = np.nan  # Yahoo's 0 for a missing open/high/low
    hint = meta.get("priceHint")
    if isinstance(hint, int) and not isinstance(hint, bool) and 0 <= hint <= MAX_PRICE_HINT:
        frame[PRICES] = frame[PRICES].round(hint)

    refuse_future(frame["date"].iloc[-1], fail, today or datetime.now(tz).date())
    return frame[COLUMNS].reset_index(drop=True)
