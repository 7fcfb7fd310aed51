"""The panel's indicators the way an analyst would compute them in pandas (groupby + rolling), to check the SQL and
to time it against: call_volume_5d, put_volume_5d, call_put_ratio_5d, etf_flow_5d_pct, etf_flow_5d_pct_spread.
`values` computes the numbers, `long_frame` lays them out as marts.indicators holds them (the benchmark times the
two apart: DuckDB's counted queries compare with the first, its readings held in memory with both)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

NAMES = ("call_volume_5d", "put_volume_5d", "call_put_ratio_5d", "etf_flow_5d_pct", "etf_flow_5d_pct_spread")


def read_lake(lake_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The options volume and ETF NAV partitions of a lake, as data frames."""
    volume = pd.read_parquet(lake_dir / "options_volume")
    nav = pd.read_parquet(lake_dir / "etf_nav")
    return volume, nav


def indicators(volume: pd.DataFrame, nav: pd.DataFrame, small_caps, large_caps) -> pd.DataFrame:
    """Long readings (date, indicator, subject, value), as marts.indicators holds them."""
    return long_frame(values(volume, nav, small_caps, large_caps))


def values(volume: pd.DataFrame, nav: pd.DataFrame, small_caps, large_caps) -> dict:
    """The readings' numbers, each with the rows it belongs to: the sorted OCC rows and which of them have a full
    window, the 5-session sums and ratio for those; the ETF rows with a full window, their flows and assets; the
    spread per date."""
    volume = volume.sort_values(["underlying", "date"], kind="stable")
    by_underlying = volume.groupby("underlying", observed=True, sort=False)
    calls = by_underlying["call_volume"].rolling(5).sum().to_numpy()
    puts = by_underlying["put_volume"].rolling(5).sum().to_numpy()
    full = by_underlying.cumcount().to_numpy() >= 4  # 5 rows of the underlying so far
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(puts[full] == 0, np.nan, calls[full] / puts[full])

    nav = nav.sort_values(["ticker", "date"], kind="stable")
    by_ticker = nav.groupby("ticker", observed=True, sort=False)
    nav = nav.assign(flow=(nav["shares_outstanding"] - by_ticker["shares_outstanding"].shift(1))
                     * by_ticker["nav"].shift(1), assets=nav["nav"] * nav["shares_outstanding"])
    nav["flow_5d"] = nav.groupby("ticker", observed=True, sort=False)["flow"].rolling(5).sum().to_numpy()
    done = nav[nav["flow_5d"].notna()]
    side = done["ticker"].astype(str).map({**{t: "small" for t in small_caps}, **{t: "large" for t in large_caps}})
    sums = done[side.notna()].groupby([done["date"], side], observed=True)[["flow_5d", "assets"]].sum()
    share = (sums["flow_5d"] / sums["assets"]).unstack()
    spread = (share["small"] - share["large"]).dropna()
    return {"volume": volume, "full": full, "calls": calls[full], "puts": puts[full], "ratio": ratio,
            "etfs": done, "etf_pct": done["flow_5d"] / done["assets"], "spread": spread}


def long_frame(v: dict) -> pd.DataFrame:
    """The numbers of `values` as long readings (date, indicator, subject, value)."""
    volume, full, done, spread = v["volume"], v["full"], v["etfs"], v["spread"]
    base = pd.DataFrame({"date": volume["date"].to_numpy()[full],
                         "subject": volume["underlying"].astype(str).to_numpy()[full]})
    frames = [base.assign(indicator="call_volume_5d", value=v["calls"]),
              base.assign(indicator="put_volume_5d", value=v["puts"]),
              base.assign(indicator="call_put_ratio_5d", value=v["ratio"]),
              pd.DataFrame({"date": done["date"], "subject": done["ticker"].astype(str),
                            "indicator": "etf_flow_5d_pct", "value": v["etf_pct"]}),
              pd.DataFrame({"date": spread.index, "subject": "small-large", "indicator": "etf_flow_5d_pct_spread",
                            "value": spread.to_numpy()})]
    return pd.concat(frames, ignore_index=True)[["date", "indicator", "subject", "value"]]
