"""SYNTHETIC Yahoo Finance chart answer for the S&P SmallCap 600 (``^SP600``): nothing written here is real data.

`generate` writes ``<out_dir>/yahoo/chart/^SP600.json`` in the layout of Yahoo's v8 chart API
(``query2.finance.yahoo.com/v8/finance/chart/%5ESP600?...&interval=1d``), as the real answers look
(tests/sources/data/yahoo-chart-SP500TR.json is one):

* compact JSON, no trailing newline: ``{"chart":{"result":[{"meta":{...},"timestamp":[...],"indicators":{"quote":
  [{"high":[...],"close":[...],"low":[...],"open":[...],"volume":[...]}],"adjclose":[{"adjclose":[...]}]}}],
  "error":null}}``;
* one bar per NYSE session of the sample, stamped at the session's 09:30 New York open in UTC seconds (13:30 UTC
  in summer, 14:30 in winter);
* prices rounded to cents and carried through float32 as Yahoo's are (``1265.469970703125``), volume 0 (an
  index), adjclose = close;
* meta as Yahoo sends it after the last session's close: ``regularMarketTime`` 17:15 New York, the last session
  as ``currentTradingPeriod``, ``priceHint`` 2, ``exchangeTimezoneName`` America/New_York; ``longName`` and
  ``shortName`` say SYNTHETIC.

The story: the S&P 600 tracks the sample's Russell 2000 (its daily log return is RUT's plus a little noise, so
the two small-cap indexes correlate at about 0.97, as the real ones do), with a drift that takes it from about
870 on 2019-01-02 to about 1,265 before the last 5 sessions; in the small-cap squeeze of those 5 sessions
(2024-07-11..2024-07-17 for the default history) it rallies about 11 %, with RUT (+11.5 %).
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

SYMBOL = "^SP600"
NEW_YORK = ZoneInfo("America/New_York")
START = 870.0  # level before the first session
PRE_SQUEEZE = 1265.0  # close of the session before the last 5
SQUEEZE = (0.019, 0.031, 0.013, 0.018, 0.022)  # scripted daily returns of the last 5 sessions (RUT: +2.1 %, ...)
NOISE = 0.0035  # daily sd of the log return beyond RUT's
GAP_VOL = 0.003  # open vs the previous close
RANGE_VOL = 0.007  # high/low beyond the open-close body
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]


def mirror_path(out_dir: Path) -> Path:
    return out_dir / "yahoo" / "chart" / f"{SYMBOL}.json"


def stamp(day: date, hour: int, minute: int) -> int:
    """UTC seconds of `hour:minute` New York time on `day`."""
    return int(datetime.combine(day, time(hour, minute), NEW_YORK).timestamp())


def yahoo_number(value: float) -> float:
    """Yahoo's number: cents carried through float32 (printed by json as the float64 of that float32)."""
    return float(np.float32(round(float(value), 2)))


def closes(rng: np.random.Generator, rut_closes: np.ndarray) -> np.ndarray:
    """RUT's daily log returns plus noise, drifted to PRE_SQUEEZE, then the scripted squeeze."""
    pre = len(rut_closes) - len(SQUEEZE)
    rut_returns = np.diff(np.log(np.concatenate([[rut_closes[0]], rut_closes[:pre]])))  # first one 0
    returns = rut_returns + NOISE * rng.standard_normal(pre)
    returns += (np.log(PRE_SQUEEZE / START) - returns.sum()) / pre
    history = np.log(START) + np.cumsum(returns)
    squeeze = history[-1] + np.cumsum(np.log1p(np.asarray(SQUEEZE)))
    return np.exp(np.concatenate([history, squeeze]))


def bars(rng: np.random.Generator, close: np.ndarray) -> dict[str, list[float]]:
    """Open near the previous close, high/low beyond the open-close body, all as Yahoo numbers."""
    draws = rng.standard_normal((len(close), 3))
    previous = np.concatenate([[START], close[:-1]])
    opens = previous * np.exp(GAP_VOL * draws[:, 0])
    highs = np.maximum(opens, close) * np.exp(RANGE_VOL * np.abs(draws[:, 1]))
    lows = np.minimum(opens, close) * np.exp(-RANGE_VOL * np.abs(draws[:, 2]))
    return {name: [yahoo_number(v) for v in values]
            for name, values in (("high", highs), ("close", close), ("low", lows), ("open", opens))}


def answer(sessions: list[date], quote: dict[str, list[float]]) -> dict:
    last = sessions[-1]
    period = {"timezone": "EDT", "gmtoffset": -14400}  # the sample ends in July
    meta = {
        "currency": "USD", "symbol": SYMBOL, "exchangeName": "SNP", "fullExchangeName": "SNP",
        "instrumentType": "INDEX", "firstTradeDate": stamp(sessions[0], 9, 30),
        "regularMarketTime": stamp(last, 17, 15), "hasPrePostMarketData": False, "gmtoffset": -14400,
        "timezone": "EDT", "exchangeTimezoneName": "America/New_York", "regularMarketPrice": quote["close"][-1],
        "longName": "SYNTHETIC sample data, not from Yahoo (S&P SmallCap 600 layout)",
        "shortName": "S&P 600 (SYNTHETIC)", "chartPreviousClose": yahoo_number(START), "priceHint": 2,
        "currentTradingPeriod": {
            "pre": {**period, "start": stamp(last, 4, 0), "end": stamp(last, 9, 30)},
            "regular": {**period, "start": stamp(last, 9, 30), "end": stamp(last, 16, 0)},
            "post": {**period, "start": stamp(last, 16, 0), "end": stamp(last, 20, 0)},
        },
        "dataGranularity": "1d", "range": "", "validRanges": VALID_RANGES,
    }
    return {"chart": {"result": [{
        "meta": meta,
        "timestamp": [stamp(day, 9, 30) for day in sessions],
        "indicators": {"quote": [{**quote, "volume": [0] * len(sessions)}],
                       "adjclose": [{"adjclose": quote["close"]}]},
    }], "error": None}}


def generate(out_dir: Path, rng: np.random.Generator, sessions: list[date], rut_closes: np.ndarray) -> list[Path]:
    """Write the chart answer; `rut_closes` are the sample's RUT closes on the same sessions."""
    assert len(rut_closes) == len(sessions)
    doc = answer(sessions, bars(rng, closes(rng, rut_closes)))
    path = mirror_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("ascii"))
    return [path]


def check(path: Path, sessions: list[date], rut_closes: np.ndarray) -> None:
    """Re-read the answer, print the squeeze statistics and assert the layout and the story."""
    result = json.loads(path.read_bytes())["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    stamps = result["timestamp"]
    assert stamps == sorted(set(stamps)) and len(stamps) == len(sessions), path
    assert [datetime.fromtimestamp(s, NEW_YORK).date() for s in stamps] == sessions, path
    assert all(len(quote[k]) == len(stamps) for k in ("open", "high", "low", "close", "volume")), path
    cents = {k: np.round(np.asarray(quote[k]), 2) for k in ("open", "high", "low", "close")}
    assert (cents["low"] > 0).all(), path
    assert (cents["low"] <= np.minimum(cents["open"], cents["close"])).all(), path
    assert (np.maximum(cents["open"], cents["close"]) <= cents["high"]).all(), path
    close = cents["close"]
    move = close[-1] / close[-1 - len(SQUEEZE)] - 1
    rut_move = rut_closes[-1] / rut_closes[-1 - len(SQUEEZE)] - 1
    tail = close[-50:]
    z = (tail[-1] - tail.mean()) / tail.std(ddof=1)
    corr = np.corrcoef(np.diff(np.log(close)), np.diff(np.log(rut_closes)))[0, 1]
    print(f"SP600 (Yahoo layout) {len(SQUEEZE)}-session return: {move:+.2%} (RUT {rut_move:+.2%}); "
          f"last-session z-score (50d): {z:+.2f}; corr of daily returns with RUT: {corr:.2f}; "
          f"first/last close {close[0]:.2f}/{close[-1]:.2f}")
    assert 0.10 <= move <= 0.13, move
    assert z >= 3.0, z
    assert 0.93 <= corr <= 0.99, corr
