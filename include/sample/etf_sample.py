"""SYNTHETIC ETF NAV-history workbooks: nothing written here is real fund data.

`generate` writes, for each of IWM, IJR, VTWO, SPY, IVV and QQQ, one workbook in the layout of State Street's
NAV-history download ``navhist-us-en-<ticker>.xlsx`` to ``<out_dir>/etf/ssga/`` (the SSGA layout is used for
every ticker, including the non-SPDR funds, which SSGA does not publish):

* one sheet, ``navhist``: ``Fund Name:`` and ``Ticker Symbol:`` rows, a blank row, the header
  ``Date | NAV | Shares Outstanding | Total Net Assets``, one row per session NEWEST FIRST with the date as text
  ``17-Jul-2024``, then a blank row and a disclaimer (which says the file is synthetic);
* NAV rounded to cents, shares outstanding in whole creation units (50,000 shares), total net assets =
  NAV x shares.

The story: a GARCH-free but fat-tailed market factor with a 2020-like crash drives all six NAVs, the small-cap
funds load on an extra small-cap factor, and each NAV reaches a plausible level before the last 5 sessions.
In the last 5 sessions (2024-07-11..2024-07-17 for the default history) small caps rally about 11 % while large
caps are about flat, IWM/IJR/VTWO shares outstanding rise 5-7 % (creations) and SPY/QQQ/IVV lose 0.5-1.2 %
(redemptions).

Workbooks are byte-identical for the same inputs: openpyxl's document timestamps are pinned and the zip members
are re-stamped with a fixed date.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from openpyxl import Workbook

SQUEEZE = 5
UNIT = 50_000  # shares per creation unit
FIXED_TIME = datetime(2024, 7, 17, 21, 0, 0)
ZIP_TIME = (2024, 7, 17, 21, 0, 0)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
HEADER = ["Date", "NAV", "Shares Outstanding", "Total Net Assets"]
DISCLAIMER = ("SYNTHETIC SAMPLE DATA. Not published by State Street Global Advisors or any fund sponsor: the "
              "layout imitates SSGA's NAV history download, every value is generated. Not investment advice.")
CRASH = (date(2020, 2, 20), date(2020, 3, 23), -0.42)  # (first, last session, total market log return)
REBOUND = (date(2020, 3, 24), date(2020, 6, 8), 0.33)
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


@dataclass(frozen=True)
class Fund:
    ticker: str
    name: str
    nav_start: float  # first session
    nav_pre: float  # the session before the last 5
    shares_start: float
    shares_pre: float
    beta: float  # loading on the market factor
    small: float  # loading on the small-cap factor
    flow_vol: float  # daily sd of log shares outstanding
    nav_squeeze: tuple[float, ...]  # scripted daily NAV returns, last 5 sessions
    shares_squeeze: tuple[float, ...]  # scripted daily shares-outstanding changes, last 5 sessions


SMALL_RALLY = (0.035, 0.012, 0.018, 0.034, 0.009)
FUNDS = (
    Fund("IWM", "iShares Russell 2000 ETF", 133.9, 202.6, 250e6, 283e6, 1.15, 1.0, 0.007, SMALL_RALLY,
         (0.009, 0.012, 0.014, 0.017, 0.011)),
    Fund("IJR", "iShares Core S&P Small-Cap ETF", 68.6, 104.3, 470e6, 690e6, 1.10, 0.9, 0.005,
         tuple(r * 0.95 for r in SMALL_RALLY), (0.008, 0.010, 0.012, 0.014, 0.009)),
    Fund("VTWO", "Vanguard Russell 2000 ETF", 66.9, 81.2, 28e6, 76e6, 1.15, 1.0, 0.008, SMALL_RALLY,
         (0.010, 0.013, 0.015, 0.019, 0.012)),
    Fund("SPY", "SPDR S&P 500 ETF Trust", 250.2, 559.8, 930e6, 990e6, 1.0, 0.0, 0.004,
         (0.004, -0.006, 0.003, 0.007, -0.011), (-0.002, -0.003, -0.001, -0.004, -0.002)),
    Fund("IVV", "iShares Core S&P 500 ETF", 251.6, 562.5, 640e6, 925e6, 1.0, 0.0, 0.003,
         (0.004, -0.006, 0.003, 0.007, -0.011), (-0.001, -0.001, -0.002, -0.0005, -0.0015)),
    Fund("QQQ", "Invesco QQQ Trust", 154.3, 497.4, 420e6, 588e6, 1.2, -0.1, 0.004,
         (-0.001, -0.009, 0.004, 0.002, -0.029), (-0.001, -0.003, -0.002, -0.0035, -0.0025)),
)


def mirror_path(out_dir: Path, ticker: str) -> Path:
    return out_dir / "etf" / "ssga" / f"navhist-us-en-{ticker.lower()}.xlsx"


def text_date(day: date) -> str:
    return f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year}"


def factors(rng: np.random.Generator, sessions: list[date]) -> tuple[np.ndarray, np.ndarray]:
    """Daily log returns of a market factor (fat-tailed, with a scripted 2020 crash) and a small-cap factor."""
    n = len(sessions)
    market = 0.0105 * rng.standard_t(5, n) / np.sqrt(5 / 3)
    small = 0.0055 * rng.standard_normal(n)
    days = np.array(sessions)
    for first, last, total in (CRASH, REBOUND):
        inside = (days >= first) & (days <= last)
        if inside.any():
            market[inside] += total / inside.sum()
            small[inside] += 0.25 * total / inside.sum()
    return market, small


def series(rng: np.random.Generator, fund: Fund, market: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, ...]:
    """(nav, shares) for every session: calibrated to the fund's levels, then the scripted last 5 sessions."""
    n = len(market)
    pre = n - SQUEEZE
    returns = fund.beta * market[1:pre] + fund.small * small[1:pre] + 0.0015 * rng.standard_normal(pre - 1)
    returns += (np.log(fund.nav_pre / fund.nav_start) - returns.sum()) / (pre - 1)
    log_nav = np.log(fund.nav_start) + np.concatenate([[0.0], np.cumsum(returns)])
    log_nav = np.concatenate([log_nav, log_nav[-1] + np.cumsum(np.log1p(fund.nav_squeeze))])

    flows = fund.flow_vol * rng.standard_t(4, pre - 1) / np.sqrt(2)
    flows += (np.log(fund.shares_pre / fund.shares_start) - flows.sum()) / (pre - 1)
    log_shares = np.log(fund.shares_start) + np.concatenate([[0.0], np.cumsum(flows)])
    log_shares = np.concatenate([log_shares, log_shares[-1] + np.cumsum(np.log1p(fund.shares_squeeze))])
    nav = np.round(np.exp(log_nav), 2)
    shares = np.round(np.exp(log_shares) / UNIT) * UNIT
    return nav, shares


def workbook_bytes(fund: Fund, sessions: list[date], nav: np.ndarray, shares: np.ndarray) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "navhist"
    sheet.append(["Fund Name:", f"{fund.name} (SYNTHETIC SAMPLE)"])
    sheet.append(["Ticker Symbol:", fund.ticker])
    sheet.append([])
    sheet.append(HEADER)
    for t in range(len(sessions) - 1, -1, -1):  # newest first, as SSGA ships it
        price = round(float(nav[t]), 2)
        sheet.append([text_date(sessions[t]), price, int(shares[t]), round(price * int(shares[t]), 2)])
        row = sheet.max_row
        sheet.cell(row, 2).number_format = "#,##0.00"
        sheet.cell(row, 3).number_format = "#,##0"
        sheet.cell(row, 4).number_format = "#,##0.00"
    sheet.append([])
    sheet.append([DISCLAIMER])
    sheet.column_dimensions["A"].width = 14
    for column in "BCD":
        sheet.column_dimensions[column].width = 20
    book.properties.creator = "regime sample generator (SYNTHETIC)"
    book.properties.created = FIXED_TIME
    book.properties.modified = FIXED_TIME
    raw = io.BytesIO()
    book.save(raw)
    return restamp(raw.getvalue())


def restamp(data: bytes) -> bytes:
    """The same workbook with no wall-clock time left in it.

    openpyxl's save overwrites ``properties.modified`` with the current time (setting it beforehand is not
    enough), and zipfile dates each member with the wall clock: pin both.
    """
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            content = source.read(member.filename)
            if member.filename == "docProps/core.xml":
                content = MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", content)
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            target.writestr(info, content)
    return out.getvalue()


def generate(out_dir: Path, rng: np.random.Generator, sessions: list[date]) -> list[Path]:
    """Write the six workbooks for `sessions` (NYSE sessions, ascending) and return their paths."""
    sessions = list(sessions)
    if len(sessions) < 250:
        raise ValueError(f"need at least 250 sessions, got {len(sessions)}")
    market, small = factors(rng, sessions)
    written = []
    for fund in FUNDS:
        nav, shares = series(rng, fund, market, small)
        path = mirror_path(out_dir, fund.ticker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(workbook_bytes(fund, sessions, nav, shares))
        written.append(path)
    return sorted(written)
