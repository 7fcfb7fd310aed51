"""The panel's indicators the way an analyst would compute them in pandas (groupby + rolling), to check the SQL and
to time it against: call_volume_5d, put_volume_5d, call_put_ratio_5d, etf_flow_5d_pct, etf_flow_5d_pct_spread."""

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
    volume = volume.sort_values(["underlying", "date"], kind="stable")
    by_underlying = volume.groupby("underlying", observed=True, sort=False)
    calls = by_underlying["call_volume"].rolling(5).sum().to_numpy()
    puts = by_underlying["put_volume"].rolling(5).sum().to_numpy()
    full = by_underlying.cumcount().to_numpy() >= 4  # 5 rows of the underlying so far
    base = pd.DataFrame({"date": volume["date"].to_numpy()[full],
                         "subject": volume["underlying"].astype(str).to_numpy()[full]})
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(puts[full] == 0, np.nan, calls[full] / puts[full])
    frames = [base.assign(indicator="call_volume_5d", value=calls[full]),
              base.assign(indicator="put_volume_5d", value=puts[full]),
              base.assign(indicator="call_put_ratio_5d", value=ratio)]

    nav = nav.sort_values(["ticker", "date"], kind="stable")
    by_ticker = nav.groupby("ticker", observed=True, sort=False)
    nav = nav.assign(flow=(nav["shares_outstanding"] - by_ticker["shares_outstanding"].shift(1))
                     * by_ticker["nav"].shift(1), assets=nav["nav"] * nav["shares_outstanding"])
    nav["flow_5d"] = nav.groupby("ticker", observed=True, sort=False)["flow"].rolling(5).sum().to_numpy()
    done = nav[nav["flow_5d"].notna()]
    frames.append(pd.DataFrame({"date": done["date"], "subject": done["ticker"].astype(str),
                                "indicator": "etf_flow_5d_pct", "value": done["flow_5d"] / done["assets"]}))
    side = done["ticker"].astype(str).map({**{t: "small" for t in small_caps}, **{t: "large" for t in large_caps}})
    sums = done[side.notna()].groupby([done["date"], side], observed=True)[["flow_5d", "assets"]].sum()
    share = (sums["flow_5d"] / sums["assets"]).unstack()
    spread = (share["small"] - share["large"]).dropna()
    frames.append(pd.DataFrame({"date": spread.index, "subject": "small-large", "indicator": "etf_flow_5d_pct_spread",
                                "value": spread.to_numpy()}))
    return pd.concat(frames, ignore_index=True)[["date", "indicator", "subject", "value"]]
