"""Deterministic SYNTHETIC CFTC Traders in Financial Futures (futures only) yearly zips.

Nothing written here is real market data. `generate(out_dir, rng)` writes
``out_dir/cftc/fut_fin_txt_<YYYY>.zip`` for 2019-2024 (2024 up to the report of 2024-07-16), each holding a
single ``FinFutYY.txt`` in the layout of the real CFTC file: the same 87-column header in the same order,
the same quoting (market name, contract units, the three ``*_Quotes`` codes, sub-group and
``FutOnly`` quoted; everything else bare), numbers right-aligned in 8 (positions, concentration ratios)
or 7 (percentages, trader counts) characters, ``.`` for a trader count the CFTC withholds, CRLF line ends,
rows grouped by market with the newest report first.

Reports are every Tuesday (holiday weeks are not special-cased). Markets: the three the monitor follows,
E-mini S&P 500 (13874A), Russell E-mini (239742) and Nasdaq mini (209742), plus Canadian dollar (090741)
and the 10-year Treasury note (043602) so that filtering by contract code matters (and leading zeros must
survive). Market names follow the real February 2022 renaming (e.g. "E-MINI S&P 500 STOCK INDEX" before
2022-02-08, "E-MINI S&P 500" after); contract codes do not change.

How the numbers are built, per market and week: open interest is a log AR(1) around a level with a bump in
the week before each quarterly expiry (the roll); the net and gross shares of open interest of asset
managers, leveraged funds and other reportables are AR(1) processes around (slowly drifting) means;
spreading positions are small AR(1) shares; dealers are the residual, so that, as in the real file,
open interest = sum of (long + spreading) of the reportable groups + non-reportable long (and the same for
shorts). Weekly changes, percentages of open interest, trader counts and concentration ratios are derived
or drawn to look plausible; the monitor does not use them.

Scripted ending (a small-cap squeeze in July 2024): leveraged funds build a heavy net short in the Russell
E-mini through May and June 2024 (about -23 % of open interest), then cover sharply in the last two
reports (2024-07-09 and 2024-07-16): the net short shrinks by about half. Meanwhile leveraged funds stay net
short the E-mini S&P 500 and asset managers stay strongly net long it (about +47 % of open interest, a
crowded large-cap trade). `check()` re-reads the files and asserts this.

Only the standard library, numpy and pandas are used. Output is byte-identical for the same rng state.
Run ``python include/sample/cftc_sample.py [--out DIR] [--seed N]`` (files go to DIR/cftc/).
"""

from __future__ import annotations

import argparse
import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240716
FIRST_YEAR = 2019
LAST_REPORT = date(2024, 7, 16)
RENAMED_ON = date(2022, 2, 8)  # first report with the new market names
MEMBER = "FinFutYY.txt"
FOLDER = "cftc"

HEADER = [
    "Market_and_Exchange_Names", "As_of_Date_In_Form_YYMMDD", "Report_Date_as_YYYY-MM-DD",
    "CFTC_Contract_Market_Code", "CFTC_Market_Code", "CFTC_Region_Code", "CFTC_Commodity_Code",
    "Open_Interest_All",
    "Dealer_Positions_Long_All", "Dealer_Positions_Short_All", "Dealer_Positions_Spread_All",
    "Asset_Mgr_Positions_Long_All", "Asset_Mgr_Positions_Short_All", "Asset_Mgr_Positions_Spread_All",
    "Lev_Money_Positions_Long_All", "Lev_Money_Positions_Short_All", "Lev_Money_Positions_Spread_All",
    "Other_Rept_Positions_Long_All", "Other_Rept_Positions_Short_All", "Other_Rept_Positions_Spread_All",
    "Tot_Rept_Positions_Long_All", "Tot_Rept_Positions_Short_All",
    "NonRept_Positions_Long_All", "NonRept_Positions_Short_All",
    "Change_in_Open_Interest_All",
    "Change_in_Dealer_Long_All", "Change_in_Dealer_Short_All", "Change_in_Dealer_Spread_All",
    "Change_in_Asset_Mgr_Long_All", "Change_in_Asset_Mgr_Short_All", "Change_in_Asset_Mgr_Spread_All",
    "Change_in_Lev_Money_Long_All", "Change_in_Lev_Money_Short_All", "Change_in_Lev_Money_Spread_All",
    "Change_in_Other_Rept_Long_All", "Change_in_Other_Rept_Short_All", "Change_in_Other_Rept_Spread_All",
    "Change_in_Tot_Rept_Long_All", "Change_in_Tot_Rept_Short_All",
    "Change_in_NonRept_Long_All", "Change_in_NonRept_Short_All",
    "Pct_of_Open_Interest_All",
    "Pct_of_OI_Dealer_Long_All", "Pct_of_OI_Dealer_Short_All", "Pct_of_OI_Dealer_Spread_All",
    "Pct_of_OI_Asset_Mgr_Long_All", "Pct_of_OI_Asset_Mgr_Short_All", "Pct_of_OI_Asset_Mgr_Spread_All",
    "Pct_of_OI_Lev_Money_Long_All", "Pct_of_OI_Lev_Money_Short_All", "Pct_of_OI_Lev_Money_Spread_All",
    "Pct_of_OI_Other_Rept_Long_All", "Pct_of_OI_Other_Rept_Short_All", "Pct_of_OI_Other_Rept_Spread_All",
    "Pct_of_OI_Tot_Rept_Long_All", "Pct_of_OI_Tot_Rept_Short_All",
    "Pct_of_OI_NonRept_Long_All", "Pct_of_OI_NonRept_Short_All",
    "Traders_Tot_All",
    "Traders_Dealer_Long_All", "Traders_Dealer_Short_All", "Traders_Dealer_Spread_All",
    "Traders_Asset_Mgr_Long_All", "Traders_Asset_Mgr_Short_All", "Traders_Asset_Mgr_Spread_All",
    "Traders_Lev_Money_Long_All", "Traders_Lev_Money_Short_All", "Traders_Lev_Money_Spread_All",
    "Traders_Other_Rept_Long_All", "Traders_Other_Rept_Short_All", "Traders_Other_Rept_Spread_All",
    "Traders_Tot_Rept_Long_All", "Traders_Tot_Rept_Short_All",
    "Conc_Gross_LE_4_TDR_Long_All", "Conc_Gross_LE_4_TDR_Short_All",
    "Conc_Gross_LE_8_TDR_Long_All", "Conc_Gross_LE_8_TDR_Short_All",
    "Conc_Net_LE_4_TDR_Long_All", "Conc_Net_LE_4_TDR_Short_All",
    "Conc_Net_LE_8_TDR_Long_All", "Conc_Net_LE_8_TDR_Short_All",
    "Contract_Units", "CFTC_Contract_Market_Code_Quotes", "CFTC_Market_Code_Quotes",
    "CFTC_Commodity_Code_Quotes", "CFTC_SubGroup_Code", "FutOnly_or_Combined",
]
QUOTED = {"Market_and_Exchange_Names", "Contract_Units", "CFTC_Contract_Market_Code_Quotes",
          "CFTC_Market_Code_Quotes", "CFTC_Commodity_Code_Quotes", "CFTC_SubGroup_Code", "FutOnly_or_Combined"}

# Change_in_<Group>_<Side>_All -> the position column it is the weekly change of
CHANGES = {
    key: "Open_Interest_All" if key == "Change_in_Open_Interest_All"
    else key.removeprefix("Change_in_").rsplit("_", 2)[0] + "_Positions_" + "_".join(key.rsplit("_", 2)[1:])
    for key in HEADER if key.startswith("Change_in_")
}
GROUPS = ("Dealer", "Asset_Mgr", "Lev_Money", "Other_Rept")
REPORTABLE = ("Asset_Mgr", "Lev_Money", "Other_Rept")  # modelled directly; dealers are the residual
SIDES = ("Long", "Short", "Spread")


@dataclass(frozen=True)
class Group:
    """Shares of open interest of one reportable group: net = long - short; AR(1) noise on each."""

    net: tuple[float, float]  # mean net share in the first and in the last year (linear drift between)
    long: float  # mean gross long share
    spread: float  # mean spreading share
    net_sd: float = 0.02  # stationary standard deviation of the net share
    long_sd: float = 0.01
    traders: tuple[int, int, int] = (40, 40, 15)  # mean trader counts long, short, spread


@dataclass(frozen=True)
class Market:
    code: str
    name: str
    old_name: str
    exchange: str  # CFTC_Market_Code, 4 characters
    commodity: str  # CFTC_Commodity_Code, 4 characters
    units: str
    subgroup: str
    open_interest: float
    groups: dict[str, Group]
    dealer_spread: float
    nonrept: tuple[float, float]  # target non-reportable long and short shares
    dealer_traders: tuple[int, int, int] = (25, 25, 8)
    scripted: dict[str, dict[date, tuple[float, float]]] = field(default_factory=dict)  # (net, long) overrides


# The squeeze: Russell E-mini leveraged-fund (net, gross long) shares of open interest, report by report.
RUSSELL_LEV = {
    date(2024, 5, 7): (-0.160, 0.140), date(2024, 5, 14): (-0.180, 0.135), date(2024, 5, 21): (-0.192, 0.132),
    date(2024, 5, 28): (-0.205, 0.128), date(2024, 6, 4): (-0.218, 0.125), date(2024, 6, 11): (-0.226, 0.122),
    date(2024, 6, 18): (-0.234, 0.120), date(2024, 6, 25): (-0.230, 0.121), date(2024, 7, 2): (-0.228, 0.123),
    date(2024, 7, 9): (-0.168, 0.150), date(2024, 7, 16): (-0.112, 0.172),
}
# E-mini S&P 500: leveraged funds stay net short, asset managers stay strongly net long.
SPX_LEV = {d: (-0.150 - 0.010 * (i % 3), 0.095) for i, d in enumerate(RUSSELL_LEV)}
SPX_AM = {d: (0.470 + 0.005 * (i % 2), 0.545) for i, d in enumerate(RUSSELL_LEV)}

MARKETS = (
    Market("090741", "CANADIAN DOLLAR - CHICAGO MERCANTILE EXCHANGE",
           "CANADIAN DOLLAR - CHICAGO MERCANTILE EXCHANGE", "CME ", "090 ", "(CONTRACTS OF CAD 100,000)", "F10",
           open_interest=160_000, dealer_spread=0.010, nonrept=(0.12, 0.10),
           groups={"Asset_Mgr": Group((0.05, -0.15), 0.18, 0.02, 0.06, 0.02, (12, 22, 6)),
                   "Lev_Money": Group((0.00, -0.10), 0.12, 0.015, 0.07, 0.02, (15, 30, 8)),
                   "Other_Rept": Group((0.00, 0.00), 0.04, 0.001, 0.01, 0.005, (8, 8, 2))},
           dealer_traders=(10, 7, 4)),
    Market("13874A", "E-MINI S&P 500 - CHICAGO MERCANTILE EXCHANGE",
           "E-MINI S&P 500 STOCK INDEX - CHICAGO MERCANTILE EXCHANGE", "CME ", "138 ", "($50 X S&P 500 INDEX)",
           "F20", open_interest=2_150_000, dealer_spread=0.014, nonrept=(0.12, 0.08),
           groups={"Asset_Mgr": Group((0.36, 0.46), 0.52, 0.07, 0.025, 0.012, (150, 50, 100)),
                   "Lev_Money": Group((-0.08, -0.14), 0.10, 0.014, 0.03, 0.01, (60, 75, 45)),
                   "Other_Rept": Group((-0.02, -0.02), 0.05, 0.001, 0.01, 0.005, (25, 20, 6))},
           dealer_traders=(25, 38, 22), scripted={"Lev_Money": SPX_LEV, "Asset_Mgr": SPX_AM}),
    Market("209742", "NASDAQ MINI - CHICAGO MERCANTILE EXCHANGE",
           "NASDAQ-100 STOCK INDEX (MINI) - CHICAGO MERCANTILE EXCHANGE", "CME ", "209 ",
           "(NASDAQ 100 STOCK INDEX X $20)", "F20", open_interest=250_000, dealer_spread=0.012,
           nonrept=(0.14, 0.10),
           groups={"Asset_Mgr": Group((0.15, 0.22), 0.40, 0.04, 0.04, 0.015, (70, 30, 25)),
                   "Lev_Money": Group((-0.05, -0.08), 0.18, 0.03, 0.05, 0.015, (45, 55, 25)),
                   "Other_Rept": Group((0.00, -0.02), 0.06, 0.002, 0.015, 0.005, (15, 15, 4))},
           dealer_traders=(22, 25, 8)),
    Market("239742", "RUSSELL E-MINI - CHICAGO MERCANTILE EXCHANGE",
           "E-MINI RUSSELL 2000 INDEX - CHICAGO MERCANTILE EXCHANGE", "CME ", "239 ", "(RUSSEL 2000 INDEX X $50)",
           "F20", open_interest=470_000, dealer_spread=0.014, nonrept=(0.07, 0.05),
           groups={"Asset_Mgr": Group((0.10, 0.14), 0.42, 0.065, 0.03, 0.015, (100, 55, 40)),
                   "Lev_Money": Group((-0.08, -0.12), 0.15, 0.028, 0.035, 0.012, (55, 70, 30)),
                   "Other_Rept": Group((-0.06, -0.07), 0.03, 0.0005, 0.012, 0.004, (12, 22, 2))},
           dealer_traders=(30, 17, 6), scripted={"Lev_Money": RUSSELL_LEV}),
    Market("043602", "UST 10Y NOTE - CHICAGO BOARD OF TRADE",
           "10-YEAR U.S. TREASURY NOTES - CHICAGO BOARD OF TRADE", "CBT ", "043 ",
           "(CONTRACTS OF $100,000 FACE VALUE)", "F30", open_interest=4_000_000, dealer_spread=0.02,
           nonrept=(0.07, 0.06),
           groups={"Asset_Mgr": Group((0.35, 0.40), 0.50, 0.03, 0.03, 0.015, (110, 75, 50)),
                   "Lev_Money": Group((-0.20, -0.30), 0.08, 0.04, 0.04, 0.01, (50, 95, 55)),
                   "Other_Rept": Group((0.00, 0.00), 0.06, 0.005, 0.015, 0.005, (30, 25, 10))},
           dealer_traders=(27, 34, 12)),
)
MONITORED = ("13874A", "239742", "209742")


def report_dates(first_year: int = FIRST_YEAR, last: date = LAST_REPORT) -> list[date]:
    """Every Tuesday from the first Tuesday of `first_year` to `last`."""
    return [d.date() for d in pd.date_range(date(first_year, 1, 1), last, freq="W-TUE")]


def generate(out_dir: Path, rng: np.random.Generator) -> list[Path]:
    """Write out_dir/cftc/fut_fin_txt_<YYYY>.zip for every year and return their paths (oldest first)."""
    dates = report_dates()
    history = [dates[0] - timedelta(days=7), *dates]  # one unwritten week so the first changes are real
    rows: dict[int, list[str]] = {year: [] for year in sorted({d.year for d in dates})}
    for market in MARKETS:
        table = _simulate(market, history, rng)
        lines = _format(market, history, table, rng)
        for day, line in reversed(list(zip(history[1:], lines[1:], strict=True))):  # newest first
            rows[day.year].append(line)

    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(f'"{h}"' for h in HEADER)
    paths = []
    for year, lines in rows.items():
        text = "\r\n".join([header, *lines]) + "\r\n"
        last = max(d for d in dates if d.year == year)
        stamp = last + timedelta(days=3)  # the Friday release
        info = zipfile.ZipInfo(MEMBER, date_time=(stamp.year, stamp.month, stamp.day, 15, 30, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(info, text.encode("ascii"))
        path = folder / f"fut_fin_txt_{year}.zip"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def _ar1(rng: np.random.Generator, n: int, sd: float, phi: float = 0.9) -> np.ndarray:
    """Stationary AR(1) with standard deviation `sd` and lag-one autocorrelation `phi`."""
    shocks = rng.standard_normal(n) * sd * np.sqrt(1.0 - phi**2)
    out = np.empty(n)
    out[0] = rng.standard_normal() * sd
    for t in range(1, n):
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def _roll_week(day: date) -> bool:
    """The Tuesday before the third Friday of March, June, September and December (index futures roll)."""
    if day.month not in (3, 6, 9, 12):
        return False
    first = date(day.year, day.month, 1)
    third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    return third_friday - day == timedelta(days=3)


def _simulate(market: Market, dates: list[date], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Integer positions of every group and side; the accounting identities hold exactly."""
    n = len(dates)
    progress = np.linspace(0.0, 1.0, n)
    bump = np.array([1.12 if _roll_week(d) else 1.0 for d in dates])
    oi = np.rint(market.open_interest * np.exp(_ar1(rng, n, 0.06, 0.95)) * bump).astype(np.int64)

    shares: dict[tuple[str, str], np.ndarray] = {}
    for name, group in market.groups.items():
        net = group.net[0] + (group.net[1] - group.net[0]) * progress + _ar1(rng, n, group.net_sd)
        long = group.long + _ar1(rng, n, group.long_sd)
        for i, day in enumerate(dates):
            if day in market.scripted.get(name, {}):
                target_net, target_long = market.scripted[name][day]
                net[i] = target_net + rng.normal(0.0, 0.002)
                long[i] = target_long + rng.normal(0.0, 0.002)
        long = np.maximum(long, net + 0.004)  # the short side stays positive
        long = np.maximum(long, 0.004)
        shares[(name, "Long")] = long
        shares[(name, "Short")] = long - net
        shares[(name, "Spread")] = group.spread * np.exp(_ar1(rng, n, 0.15))
    shares[("Dealer", "Spread")] = market.dealer_spread * np.exp(_ar1(rng, n, 0.15))
    nonrept_long = market.nonrept[0] * np.exp(_ar1(rng, n, 0.08))
    nonrept_short = market.nonrept[1] * np.exp(_ar1(rng, n, 0.08))

    table = {"Open_Interest_All": oi}
    for (name, side), share in shares.items():
        table[f"{name}_Positions_{side}_All"] = np.rint(oi * share).astype(np.int64)
    spreads = sum(table[f"{g}_Positions_Spread_All"] for g in GROUPS)
    for side, nonrept in (("Long", nonrept_long), ("Short", nonrept_short)):
        others = sum(table[f"{g}_Positions_{side}_All"] for g in REPORTABLE)
        dealer = oi - np.rint(oi * nonrept).astype(np.int64) - others - spreads
        dealer = np.maximum(dealer, np.rint(oi * 0.01).astype(np.int64))
        table[f"Dealer_Positions_{side}_All"] = dealer
        table[f"Tot_Rept_Positions_{side}_All"] = others + dealer + spreads
        table[f"NonRept_Positions_{side}_All"] = oi - table[f"Tot_Rept_Positions_{side}_All"]
        if (table[f"NonRept_Positions_{side}_All"] < 0).any():
            raise AssertionError(f"{market.code}: negative non-reportable {side.lower()} position")
    return table


def _format(market: Market, dates: list[date], table: dict[str, np.ndarray], rng: np.random.Generator) -> list[str]:
    """One CSV line per week (index aligned with `dates`), in the real file's layout."""
    n = len(dates)
    oi = table["Open_Interest_All"]
    changes = {key: np.diff(values, prepend=values[0]) for key, values in table.items()}

    counts: dict[str, np.ndarray] = {}
    trader_means = {"Dealer": market.dealer_traders, **{g: market.groups[g].traders for g in REPORTABLE}}
    for name, means in trader_means.items():
        for side, mean in zip(SIDES, means, strict=True):
            counts[f"Traders_{name}_{side}_All"] = rng.poisson(mean, n)
    tot_long = sum(counts[f"Traders_{g}_{s}_All"] for g in GROUPS for s in ("Long", "Spread"))
    tot_short = sum(counts[f"Traders_{g}_{s}_All"] for g in GROUPS for s in ("Short", "Spread"))
    counts["Traders_Tot_Rept_Long_All"] = np.rint(tot_long * 0.8).astype(np.int64)
    counts["Traders_Tot_Rept_Short_All"] = np.rint(tot_short * 0.8).astype(np.int64)
    counts["Traders_Tot_All"] = (np.maximum(counts["Traders_Tot_Rept_Long_All"], counts["Traders_Tot_Rept_Short_All"])
                                 + rng.poisson(60, n))
    gross4 = rng.uniform(9.0, 30.0, (n, 2))
    gross8 = gross4 + rng.uniform(6.0, 15.0, (n, 2))
    net4 = gross4 - rng.uniform(0.0, 2.0, (n, 2))
    net8 = gross8 - rng.uniform(0.0, 3.0, (n, 2))

    lines = []
    for i, day in enumerate(dates):
        name = market.name if day >= RENAMED_ON else market.old_name
        values: dict[str, str] = {
            "Market_and_Exchange_Names": name,
            "As_of_Date_In_Form_YYMMDD": day.strftime("%y%m%d"),
            "Report_Date_as_YYYY-MM-DD": day.isoformat(),
            "CFTC_Contract_Market_Code": market.code,
            "CFTC_Market_Code": market.exchange,
            "CFTC_Region_Code": "00",
            "CFTC_Commodity_Code": market.commodity,
            "Contract_Units": market.units,
            "CFTC_Contract_Market_Code_Quotes": market.code,
            "CFTC_Market_Code_Quotes": market.exchange,
            "CFTC_Commodity_Code_Quotes": market.commodity,
            "CFTC_SubGroup_Code": market.subgroup,
            "FutOnly_or_Combined": "FutOnly",
            "Pct_of_Open_Interest_All": f"{100.0:7.1f}",
        }
        for key, column in table.items():
            values[key] = f"{column[i]:8d}"
            if key != "Open_Interest_All":
                values["Pct_of_OI_" + key.replace("_Positions", "")] = f"{100.0 * column[i] / oi[i]:7.1f}"
        for key, source in CHANGES.items():
            values[key] = f"{changes[source][i]:8d}"
        for key, column in counts.items():
            values[key] = f"{column[i]:7d}" if column[i] >= 4 or key.startswith("Traders_Tot") else "."
        for j, side in enumerate(("Long", "Short")):
            values[f"Conc_Gross_LE_4_TDR_{side}_All"] = f"{gross4[i, j]:8.1f}"
            values[f"Conc_Gross_LE_8_TDR_{side}_All"] = f"{gross8[i, j]:8.1f}"
            values[f"Conc_Net_LE_4_TDR_{side}_All"] = f"{net4[i, j]:8.1f}"
            values[f"Conc_Net_LE_8_TDR_{side}_All"] = f"{net8[i, j]:8.1f}"
        lines.append(",".join(f'"{values[h]}"' if h in QUOTED else values[h] for h in HEADER))
    return lines


def check(paths: list[Path]) -> None:
    """Re-read the written files and assert the layout and the scripted squeeze."""
    frames = []
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            if archive.namelist() != [MEMBER]:
                raise AssertionError(f"{path}: members {archive.namelist()}")
            raw = archive.read(MEMBER)
        if b"\n" in raw.replace(b"\r\n", b""):
            raise AssertionError(f"{path}: bare LF line end")
        rows = list(csv.reader(io.StringIO(raw.decode("ascii"), newline="")))
        if rows[0] != HEADER or any(len(r) != len(HEADER) for r in rows):
            raise AssertionError(f"{path}: header or row width differs from the real layout")
        frames.append(pd.DataFrame(rows[1:], columns=HEADER))
    data = pd.concat(frames, ignore_index=True)
    number = {c: pd.to_numeric(data[c]) for c in HEADER[7:24]}
    for side in ("Long", "Short"):
        total = sum(number[f"{g}_Positions_{side}_All"] + number[f"{g}_Positions_Spread_All"] for g in GROUPS)
        if not (total + number[f"NonRept_Positions_{side}_All"] == number["Open_Interest_All"]).all():
            raise AssertionError(f"open-interest identity broken on the {side.lower()} side")

    def net(code: str, group: str) -> pd.Series:
        rows = data["CFTC_Contract_Market_Code"] == code
        series = (number[f"{group}_Positions_Long_All"] - number[f"{group}_Positions_Short_All"])[rows]
        return pd.Series(series.to_numpy(), index=pd.to_datetime(data.loc[rows, "Report_Date_as_YYYY-MM-DD"]))\
            .sort_index()

    russell = net("239742", "Lev_Money")
    june = russell["2024-06-01":"2024-06-30"].mean()
    last = russell.iloc[-1]
    if not (june < -90_000 and 0.35 <= last / june <= 0.65 and russell.iloc[-3] < russell.iloc[-2] < last):
        raise AssertionError(f"Russell leveraged-fund covering not as scripted: June {june:.0f}, "
                             f"last three {russell.iloc[-3:].tolist()}")
    spx_lev = net("13874A", "Lev_Money")["2024-05-01":]
    spx_am = net("13874A", "Asset_Mgr")["2024-05-01":]
    if not (spx_lev < 0).all() or not (spx_am > 700_000).all():
        raise AssertionError("E-mini S&P positioning not as scripted (lev net short, asset managers net long)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "mirror")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    paths = generate(args.out, np.random.default_rng(args.seed))
    check(paths)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
