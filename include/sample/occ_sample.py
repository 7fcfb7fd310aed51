"""SYNTHETIC OCC volume-query files: nothing written here is real OCC data.

`generate` writes one file per underlying of the watchlist and per session, in the layout of OCC's daily
per-underlying volume query (marketdata.theocc.com/volume-query, symbolType=U, reportType=D), under
``<out_dir>/occ/volume-query/<YYYY-MM-DD>/<UNDERLYING>.csv``:

* header ``quantity,underlying,symbol,actype,porc,exchange,actdate`` (no trailing comma);
* one row per call/put, exchange and account type (C customer, F firm, M market maker) with a non-zero
  quantity, each row ending in a trailing comma, ``actdate`` as MM/DD/YYYY, CRLF line endings;
* quantities count both sides of each trade, as OCC's do: per call/put and exchange the account-type rows sum
  to exactly twice the contracts traded.

It also writes OCC's answer for a holiday, ``No record(s) found`` (HTTP 200 body, no CSV), for 2024-07-04 and
IWM, so the no-trading-day path is exercised.

The story: daily contract volumes follow an AR(1) in logs around a per-name level; in the last 5 sessions
(2024-07-11..2024-07-17 for the default window) IWM call volume ramps to a record 2.55x its maximum over the
prior 100 sessions while its puts rise only modestly, and NVDA call volume sags to about half of its prior
20-session mean.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

WATCHLIST = ("IWM", "SPY", "QQQ", "NVDA", "TSLA", "AAPL")
SESSIONS = 120  # the last this-many of the sessions passed in
SQUEEZE = 5
HOLIDAY = date(2024, 7, 4)
HOLIDAY_UNDERLYING = "IWM"
HOLIDAY_BODY = b"No record(s) found"
HEADER = "quantity,underlying,symbol,actype,porc,exchange,actdate"
EXCHANGES = ("AMEX", "CBOE", "ISE", "PHLX")  # codes seen in OCC captures
EXCHANGE_SHARE = np.array([0.18, 0.40, 0.22, 0.20])
ACTYPES = ("C", "F", "M")
ACTYPE_SHARE = np.array([0.50, 0.08, 0.42])  # per side: customer, firm, market maker

# Contracts per day (not sides) around which each name's volume moves, and the calls' share of it.
LEVEL = {"IWM": 1_000_000, "SPY": 7_500_000, "QQQ": 3_200_000, "NVDA": 4_500_000, "TSLA": 3_000_000,
         "AAPL": 1_600_000}
CALL_SHARE = {"IWM": 0.38, "SPY": 0.45, "QQQ": 0.47, "NVDA": 0.60, "TSLA": 0.58, "AAPL": 0.57}
AR_PHI = 0.6
AR_SIGMA = 0.22
IWM_CALL_RAMP = (1.25, 1.6, 2.0, 2.55, 2.3)  # x IWM's max daily call volume over the prior 100 sessions
IWM_PUT_LIFT = (1.1, 1.25, 1.35, 1.45, 1.4)  # x IWM's prior 20-session mean put volume
NVDA_CALL_SAG = (0.72, 0.62, 0.55, 0.5, 0.48)  # x NVDA's prior 20-session mean call volume


def mirror_path(out_dir: Path, underlying: str, day: date) -> Path:
    return out_dir / "occ" / "volume-query" / day.isoformat() / f"{underlying}.csv"


def contracts(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(calls, puts) contracts per session for each name, with the last 5 sessions scripted."""
    out = {}
    for name in WATCHLIST:
        noise = np.empty(n)
        noise[0] = rng.normal(0.0, AR_SIGMA / np.sqrt(1 - AR_PHI**2))
        for t in range(1, n):
            noise[t] = AR_PHI * noise[t - 1] + rng.normal(0.0, AR_SIGMA)
        total = LEVEL[name] * np.exp(noise)
        share = CALL_SHARE[name] + rng.normal(0.0, 0.025, n)
        calls = np.round(total * share)
        puts = np.round(total * (1 - share))
        out[name] = (calls, puts)
    calls, puts = out["IWM"]
    prior_max = calls[-SQUEEZE - 100:-SQUEEZE].max()
    put_mean = puts[-SQUEEZE - 20:-SQUEEZE].mean()
    calls[-SQUEEZE:] = np.round(prior_max * np.array(IWM_CALL_RAMP))
    puts[-SQUEEZE:] = np.round(put_mean * np.array(IWM_PUT_LIFT))
    calls, _ = out["NVDA"]
    calls[-SQUEEZE:] = np.round(calls[-SQUEEZE - 20:-SQUEEZE].mean() * np.array(NVDA_CALL_SAG))
    return out


def split(rng: np.random.Generator, total: int, share: np.ndarray, concentration: float) -> np.ndarray:
    weights = rng.dirichlet(share * concentration)
    return rng.multinomial(int(total), weights)


def day_file(rng: np.random.Generator, underlying: str, day: date, calls: int, puts: int) -> bytes:
    actdate = day.strftime("%m/%d/%Y")
    lines = [HEADER]
    for porc, volume in (("C", calls), ("P", puts)):
        for exchange, n in zip(EXCHANGES, split(rng, volume, EXCHANGE_SHARE, 60.0), strict=True):
            # Each contract is two sides: the buyer's and the seller's account type.
            sides = split(rng, n, ACTYPE_SHARE, 40.0) + split(rng, n, ACTYPE_SHARE, 40.0)
            for actype, quantity in zip(ACTYPES, sides, strict=True):
                if quantity:
                    lines.append(f"{quantity},{underlying},{underlying},{actype},{porc},{exchange},{actdate},")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def generate(out_dir: Path, rng: np.random.Generator, sessions: list[date]) -> list[Path]:
    """Write the files for the last `SESSIONS` of `sessions` (NYSE sessions, ascending) and return their paths."""
    window = list(sessions)[-SESSIONS:]
    if len(window) < SQUEEZE + 100:
        raise ValueError(f"need at least {SQUEEZE + 100} sessions, got {len(window)}")
    volumes = contracts(rng, len(window))
    written = []
    for t, day in enumerate(window):
        for name in WATCHLIST:
            calls, puts = volumes[name]
            path = mirror_path(out_dir, name, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(day_file(rng, name, day, int(calls[t]), int(puts[t])))
            written.append(path)
    if window[0] < HOLIDAY < window[-1] and HOLIDAY not in window:
        path = mirror_path(out_dir, HOLIDAY_UNDERLYING, HOLIDAY)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(HOLIDAY_BODY)
        written.append(path)
    return sorted(written)
