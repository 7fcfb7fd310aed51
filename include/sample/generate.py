"""Deterministic SYNTHETIC sample data imitating Cboe index history downloads.

Nothing written here is real market data.  The script writes six files in the
layout of Cboe's ``<SYMBOL>_History.csv`` downloads to ``<out>/cboe/`` (and, through
the sibling modules, the OCC, CFTC, ETF, Yahoo S&P 600 and Cboe put/call volume files; see their docstrings):

* ``RUT``, ``SPX``, ``NDX``, ``VIX``, ``RVX``: ``DATE,OPEN,HIGH,LOW,CLOSE``;
* ``DJX``: Cboe's single-value layout, ``DATE,DJX`` (close only).

Dates are ``MM/DD/YYYY`` NYSE sessions (exchange_calendars ``XNYS``) from
2019-01-02 to 2024-07-17.  Values are rounded to cents and printed through
float32 with six decimals, which reproduces Cboe's artefacts such as
``2057.239990``.

How the series are built:

1. A market factor follows GARCH(1,1) volatility clustering, with a scripted
   2020-like crash and rebound overlaid on its returns.
2. Each equity index loads on the factor plus its own noise, with a constant
   drift chosen so its level reaches a plausible target before the final
   stretch.
3. The final 45 sessions are calm and mildly range-bound (strongly so for
   RUT); the last 5 sessions are a scripted small-cap squeeze: RUT up about
   11-12 % while SPX is roughly flat.
4. VIX is a mean-reverting log-level process (long-run ~18) pushed up when
   SPX falls; RVX is VIX plus a mean-reverting spread that narrows when RUT
   outperforms SPX.

The end of the script re-reads the files and asserts the layout, OHLC
consistency and the squeeze signal (RUT's 50-session z-score clearly >= 3,
no other index near it), so a regeneration cannot silently break them.

Regenerate with ``python include/sample/generate.py`` (option ``--out``).

It stays one file (about 450 lines): the index series are generated together (their shapes are tied to one another
by the checks above), and the other sources' generators are its sibling modules already.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

SEED = 20240716
FIRST_SESSION = "2019-01-02"
LAST_SESSION = "2024-07-17"

ZSCORE_WINDOW = 50
SQUEEZE_SESSIONS = 5
CALM_SESSIONS = ZSCORE_WINDOW - SQUEEZE_SESSIONS

# GARCH(1,1) for the market factor: var_t = omega + alpha*r_{t-1}^2 + beta*var_{t-1}.
GARCH_ALPHA = 0.10
GARCH_BETA = 0.87
LONG_RUN_VOL = 0.0095
GARCH_OMEGA = LONG_RUN_VOL**2 * (1.0 - GARCH_ALPHA - GARCH_BETA)
CALM_VOL = 0.0055

# Scripted overlays on the market factor: (first session, last session, total log return).
MARKET_EPISODES = (
    ("2020-02-21", "2020-03-23", -0.23),
    ("2020-03-24", "2020-05-29", 0.20),
)

VIX_LONG_RUN = 18.0
VOL_FLOOR = 9.0
RVX_SPREAD = 4.5
SQUEEZE_NOISE_SCALE = 0.25


@dataclass(frozen=True)
class EquitySpec:
    """Parameters of one synthetic equity index."""

    symbol: str
    start: float  # level before the first session
    target: float  # level reached at the start of the calm stretch
    beta: float  # loading on the market factor
    rho: float  # correlation of daily returns with the market factor
    calm_kappa: float  # mean-reversion speed during the calm stretch
    squeeze: tuple[float, ...]  # scripted simple returns of the last sessions
    single_value: bool = False  # Cboe's ``DATE,<SYMBOL>`` close-only layout


EQUITIES = (
    EquitySpec("RUT", 1350.0, 2030.0, 1.15, 0.80, 0.35, (0.021, 0.034, 0.012, 0.019, 0.024)),
    EquitySpec("SPX", 2500.0, 5560.0, 1.00, 0.96, 0.05, (0.0045, -0.0030, 0.0040, 0.0025, 0.0010)),
    EquitySpec("NDX", 6300.0, 19900.0, 1.10, 0.90, 0.05, (0.0030, -0.0060, 0.0020, 0.0010, -0.0040)),
    EquitySpec(
        "DJX", 233.0, 398.0, 0.95, 0.92, 0.05, (0.0040, 0.0010, 0.0030, 0.0020, 0.0010), single_value=True
    ),
)


# --------------------------------------------------------------------------- calendar


def nyse_sessions(first: str = FIRST_SESSION, last: str = LAST_SESSION) -> pd.DatetimeIndex:
    """NYSE trading sessions between ``first`` and ``last`` inclusive."""
    calendar = xcals.get_calendar("XNYS", start="2018-01-01", end="2025-12-31")
    return calendar.sessions_in_range(first, last)


def stretch_masks(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the calm stretch and of the squeeze (the last sessions)."""
    position = np.arange(n)
    squeeze = position >= n - SQUEEZE_SESSIONS
    calm = (position >= n - ZSCORE_WINDOW) & ~squeeze
    return calm, squeeze


# --------------------------------------------------------------------------- market factor


def episode_overlay(sessions: pd.DatetimeIndex) -> np.ndarray:
    """Extra market log returns spreading each scripted episode evenly over its sessions."""
    overlay = np.zeros(len(sessions))
    for first, last, total in MARKET_EPISODES:
        inside = (sessions >= pd.Timestamp(first)) & (sessions <= pd.Timestamp(last))
        overlay[inside] += total / inside.sum()
    return overlay


def market_factor(shocks: np.ndarray, overlay: np.ndarray, calm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) market log returns and their conditional daily volatility."""
    n = len(shocks)
    returns = np.empty(n)
    vol = np.empty(n)
    variance = LONG_RUN_VOL**2
    for t in range(n):
        vol[t] = CALM_VOL if calm[t] else np.sqrt(variance)
        returns[t] = vol[t] * shocks[t] + overlay[t]
        variance = GARCH_OMEGA + GARCH_ALPHA * returns[t] ** 2 + GARCH_BETA * variance
    return returns, vol


# --------------------------------------------------------------------------- equity indexes


def idiosyncratic_scale(spec: EquitySpec) -> float:
    """Noise scale giving ``spec.rho`` correlation with the market factor."""
    return spec.beta * np.sqrt(1.0 / spec.rho**2 - 1.0)


def raw_log_returns(spec: EquitySpec, market: np.ndarray, vol: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Factor plus index-specific log returns, before drift and scripting."""
    return spec.beta * market + idiosyncratic_scale(spec) * vol * noise


def drifted_history(spec: EquitySpec, raw: np.ndarray) -> np.ndarray:
    """Log levels of the history part, with a constant drift hitting ``spec.target``."""
    drift = (np.log(spec.target / spec.start) - raw.sum()) / len(raw)
    return np.log(spec.start) + np.cumsum(raw + drift)


def range_bound(anchor: float, raw: np.ndarray, kappa: float) -> np.ndarray:
    """Log levels mean-reverting towards ``anchor`` with speed ``kappa``."""
    levels = np.empty(len(raw))
    level = anchor
    for t, shock in enumerate(raw):
        level = level + shock - kappa * (level - anchor)
        levels[t] = level
    return levels


def equity_closes(spec: EquitySpec, raw: np.ndarray, calm: np.ndarray, squeeze: np.ndarray) -> np.ndarray:
    """Close levels: drifted history, range-bound calm stretch, scripted squeeze."""
    history = drifted_history(spec, raw[~(calm | squeeze)])
    calm_levels = range_bound(history[-1], raw[calm], spec.calm_kappa)
    scripted = calm_levels[-1] + np.cumsum(np.log1p(np.asarray(spec.squeeze)))
    return np.exp(np.concatenate([history, calm_levels, scripted]))


def log_returns(closes: np.ndarray, start: float) -> np.ndarray:
    """Daily close-to-close log returns, the first one measured from ``start``."""
    return np.diff(np.log(np.concatenate([[start], closes])))


# --------------------------------------------------------------------------- volatility indexes


def vix_closes(
    spx_returns: np.ndarray, market_vol: np.ndarray, noise: np.ndarray, quiet: np.ndarray
) -> np.ndarray:
    """VIX: log-level mean reversion to ~18, scaled by market vol, pushed up when SPX falls."""
    kappa, sensitivity, noise_vol = 0.06, 5.0, 0.030
    anchor = np.log(VIX_LONG_RUN * (market_vol / LONG_RUN_VOL) ** 0.75)
    surprise = spx_returns - spx_returns.mean()
    scale = np.where(quiet, SQUEEZE_NOISE_SCALE, 1.0)
    closes = np.empty(len(spx_returns))
    level = np.log(23.0)
    for t in range(len(closes)):
        level += kappa * (anchor[t] - level) - sensitivity * surprise[t]
        level = max(level + noise_vol * scale[t] * noise[t], np.log(VOL_FLOOR))
        closes[t] = np.exp(level)
    return closes


def rvx_closes(
    vix: np.ndarray,
    rut_returns: np.ndarray,
    spx_returns: np.ndarray,
    noise: np.ndarray,
    quiet: np.ndarray,
) -> np.ndarray:
    """RVX: VIX plus a mean-reverting spread that narrows when RUT outperforms SPX."""
    kappa, sensitivity, noise_vol = 0.10, 25.0, 0.25
    relative = (rut_returns - rut_returns.mean()) - (spx_returns - spx_returns.mean())
    scale = np.where(quiet, SQUEEZE_NOISE_SCALE, 1.0)
    spread = np.empty(len(vix))
    level = RVX_SPREAD
    for t in range(len(vix)):
        level += kappa * (RVX_SPREAD - level) - sensitivity * relative[t]
        level = max(level + noise_vol * scale[t] * noise[t], 1.0)
        spread[t] = level
    return vix + spread * np.sqrt(vix / VIX_LONG_RUN)


# --------------------------------------------------------------------------- OHLC bars


def ohlc_bars(
    closes: np.ndarray,
    previous_close: float,
    gap_vol: np.ndarray,
    range_vol: np.ndarray,
    draws: np.ndarray,
    floor: float = 0.0,
) -> pd.DataFrame:
    """Open near the previous close, high/low beyond the open-close body."""
    previous = np.concatenate([[previous_close], closes[:-1]])
    opens = np.maximum(previous * np.exp(gap_vol * draws[:, 0]), floor)
    highs = np.maximum(opens, closes) * np.exp(range_vol * np.abs(draws[:, 1]))
    lows = np.maximum(np.minimum(opens, closes) * np.exp(-range_vol * np.abs(draws[:, 2])), floor)
    return pd.DataFrame({"OPEN": opens, "HIGH": highs, "LOW": lows, "CLOSE": closes})


# --------------------------------------------------------------------------- generation


def generate(sessions: pd.DatetimeIndex, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """All six synthetic series, keyed by symbol, indexed by session."""
    n = len(sessions)
    calm, squeeze = stretch_masks(n)
    market, vol = market_factor(rng.standard_normal(n), episode_overlay(sessions), calm)
    noise = rng.standard_normal((len(EQUITIES), n))
    bar_draws = rng.standard_normal((len(EQUITIES) + 2, n, 3))
    vol_noise = rng.standard_normal((2, n))

    frames: dict[str, pd.DataFrame] = {}
    returns: dict[str, np.ndarray] = {}
    for i, spec in enumerate(EQUITIES):
        closes = equity_closes(spec, raw_log_returns(spec, market, vol, noise[i]), calm, squeeze)
        returns[spec.symbol] = log_returns(closes, spec.start)
        daily_vol = spec.beta / spec.rho * vol
        frames[spec.symbol] = ohlc_bars(closes, spec.start, 0.15 * daily_vol, 0.6 * daily_vol, bar_draws[i])

    vix = vix_closes(returns["SPX"], vol, vol_noise[0], squeeze)
    rvx = rvx_closes(vix, returns["RUT"], returns["SPX"], vol_noise[1], squeeze)
    for j, (symbol, closes) in enumerate((("VIX", vix), ("RVX", rvx))):
        frames[symbol] = ohlc_bars(
            closes,
            closes[0],
            np.full(n, 0.02),
            np.full(n, 0.03),
            bar_draws[len(EQUITIES) + j],
            floor=VOL_FLOOR,
        )
    for frame in frames.values():
        frame.index = sessions
    return frames


# --------------------------------------------------------------------------- writing


def cboe_number(value: float) -> str:
    """Cboe's number format: cents stored as float32, printed with six decimals."""
    return f"{float(np.float32(round(float(value), 2))):.6f}"


def cboe_lines(symbol: str, frame: pd.DataFrame, single_value: bool) -> list[str]:
    """Header and rows of one Cboe history file."""
    columns = ["CLOSE"] if single_value else ["OPEN", "HIGH", "LOW", "CLOSE"]
    header = f"DATE,{symbol}" if single_value else "DATE,OPEN,HIGH,LOW,CLOSE"
    rows = [
        ",".join([session.strftime("%m/%d/%Y"), *(cboe_number(v) for v in values)])
        for session, values in zip(frame.index, frame[columns].to_numpy(), strict=True)
    ]
    return [header, *rows]


def write_history(directory: Path, symbol: str, frame: pd.DataFrame, single_value: bool) -> Path:
    """Write ``<SYMBOL>_History.csv`` with ``\\n`` line endings and no trailing blank line."""
    path = directory / f"{symbol}_History.csv"
    text = "\n".join(cboe_lines(symbol, frame, single_value)) + "\n"
    path.write_bytes(text.encode("ascii"))
    return path


# --------------------------------------------------------------------------- verification


def read_closes(path: Path) -> pd.DataFrame:
    """Re-read a written file, checking its layout; columns renamed to OHLC names."""
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n") and not raw.endswith(b"\n\n"), path
    frame = pd.read_csv(path, dtype={"DATE": str})
    dates = pd.to_datetime(frame.pop("DATE"), format="%m/%d/%Y")
    assert dates.is_monotonic_increasing and dates.is_unique, path
    frame.index = pd.DatetimeIndex(dates)
    return frame.rename(columns={path.name.split("_")[0]: "CLOSE"})


def check_ohlc(symbol: str, frame: pd.DataFrame) -> None:
    """Assert low <= min(open, close) <= max(open, close) <= high, all positive."""
    if "OPEN" not in frame:
        assert (frame["CLOSE"] > 0).all(), symbol
        return
    body_low = frame[["OPEN", "CLOSE"]].min(axis=1)
    body_high = frame[["OPEN", "CLOSE"]].max(axis=1)
    assert (frame["LOW"] > 0).all(), symbol
    assert (frame["LOW"] <= body_low).all() and (body_high <= frame["HIGH"]).all(), symbol


def last_zscore(closes: pd.Series, window: int = ZSCORE_WINDOW) -> float:
    """(last close - mean of last ``window`` closes) / their sample std."""
    tail = closes.iloc[-window:]
    return float((tail.iloc[-1] - tail.mean()) / tail.std(ddof=1))


def window_change(closes: pd.Series, sessions: int = SQUEEZE_SESSIONS) -> float:
    """Simple return over the last ``sessions`` sessions."""
    return float(closes.iloc[-1] / closes.iloc[-1 - sessions] - 1.0)


def verify(paths: dict[str, Path]) -> None:
    """Re-read the files, print the signal statistics and assert the scripted conditions."""
    frames = {symbol: read_closes(path) for symbol, path in paths.items()}
    for symbol, frame in frames.items():
        check_ohlc(symbol, frame)
    closes = pd.DataFrame({symbol: frame["CLOSE"] for symbol, frame in frames.items()})
    zscores = {symbol: last_zscore(closes[symbol]) for symbol in closes}
    for symbol, z in zscores.items():
        print(f"{symbol} last-session z-score ({ZSCORE_WINDOW}d): {z:+.2f}")
    rut_move, spx_move = window_change(closes["RUT"]), window_change(closes["SPX"])
    print(f"RUT {SQUEEZE_SESSIONS}-session return: {rut_move:+.2%}  (SPX {spx_move:+.2%})")
    check_realism(closes)

    assert zscores["RUT"] >= 3.0, zscores
    assert all(z < 3.0 for symbol, z in zscores.items() if symbol != "RUT"), zscores
    assert all(abs(zscores[symbol]) < 2.5 for symbol in ("SPX", "NDX", "DJX")), zscores
    assert 0.11 <= rut_move <= 0.12, rut_move
    assert 0.005 <= spx_move <= 0.015, spx_move
    vix_move = closes["VIX"].iloc[-1] - closes["VIX"].iloc[-1 - SQUEEZE_SESSIONS]
    rvx_move = closes["RVX"].iloc[-1] - closes["RVX"].iloc[-1 - SQUEEZE_SESSIONS]
    assert abs(vix_move) <= 1.5 and rvx_move <= -1.0, (vix_move, rvx_move)
    assert (frames["VIX"]["LOW"] >= VOL_FLOOR).all() and (frames["RVX"]["LOW"] >= VOL_FLOOR).all()


def check_realism(closes: pd.DataFrame) -> None:
    """Print co-movement statistics and assert they stay in plausible ranges."""
    pct = closes[["RUT", "SPX", "NDX", "DJX"]].pct_change().dropna()
    corr = pct.corr()
    vix_corr = closes["VIX"].diff().corr(closes["SPX"].pct_change())
    rvx_corr = closes["RVX"].diff().corr(closes["RUT"].pct_change())
    spread = (closes["RVX"] - closes["VIX"]).median()
    print("daily return correlations:\n" + corr.round(2).to_string())
    print(f"corr(VIX point change, SPX % change): {vix_corr:+.2f}")
    print(f"corr(RVX point change, RUT % change): {rvx_corr:+.2f}")
    print(
        f"median RVX - VIX: {spread:.2f}; VIX min/mean/max: "
        f"{closes['VIX'].min():.2f}/{closes['VIX'].mean():.2f}/{closes['VIX'].max():.2f}"
    )
    for a, b in (("SPX", "NDX"), ("SPX", "DJX"), ("NDX", "DJX")):
        assert 0.75 <= corr.loc[a, b] <= 0.95, (a, b, corr.loc[a, b])
    for other in ("SPX", "NDX", "DJX"):
        assert 0.65 <= corr.loc["RUT", other] <= 0.85, (other, corr.loc["RUT", other])
    assert vix_corr <= -0.6 and rvx_corr <= -0.6, (vix_corr, rvx_corr)
    assert 3.0 <= spread <= 6.0, spread


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Generate, write and verify the synthetic Cboe mirror."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "mirror",
        help="mirror root; files go to <out>/cboe/ (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    directory = args.out / "cboe"
    directory.mkdir(parents=True, exist_ok=True)

    frames = generate(nyse_sessions(), np.random.default_rng(SEED))
    single = {spec.symbol: spec.single_value for spec in EQUITIES}
    paths = {
        symbol: write_history(directory, symbol, frame, single.get(symbol, False))
        for symbol, frame in frames.items()
    }
    for path in paths.values():
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    verify(paths)
    sessions = [d.date() for d in nyse_sessions()]
    generate_other_families(args.out, sessions)
    generate_yahoo(args.out, sessions, frames["RUT"]["CLOSE"].to_numpy())
    generate_putcall(args.out, sessions)


def generate_other_families(out: Path, sessions: list) -> None:
    """OCC options volume, CFTC positioning and ETF NAV history, each from its own seeded generator so
    that regenerating one family leaves the others byte-identical."""
    import cftc_sample
    import etf_sample
    import occ_sample

    written = cftc_sample.generate(out, np.random.default_rng(SEED + 1))
    cftc_sample.check(written)
    written += occ_sample.generate(out, np.random.default_rng(SEED + 2), sessions)
    written += etf_sample.generate(out, np.random.default_rng(SEED + 3), sessions)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} OCC, CFTC and ETF files ({total} bytes)")


def generate_yahoo(out: Path, sessions: list, rut_closes: np.ndarray) -> None:
    """The optional Yahoo provider's S&P 600 chart answer (yahoo/chart/^SP600.json), tracking the sample's RUT,
    from its own seeded generator (the other files stay byte-identical)."""
    import yahoo_sample

    written = yahoo_sample.generate(out, np.random.default_rng(SEED + 4), sessions, rut_closes)
    yahoo_sample.check(written[0], sessions, rut_closes)
    print(f"wrote {written[0]} ({written[0].stat().st_size} bytes)")


def generate_putcall(out: Path, sessions: list) -> None:
    """Cboe's put/call volume history (cboe/putcall/{total,equity,index}pc.csv) up to 2019-10-04, when the real
    files stopped, from its own seeded generator (the other files stay byte-identical)."""
    import putcall_sample

    written = putcall_sample.generate(out, np.random.default_rng(SEED + 5), sessions)
    putcall_sample.check(written)
    print(f"wrote {len(written)} Cboe put/call files ({sum(p.stat().st_size for p in written)} bytes)")


if __name__ == "__main__":
    main()
