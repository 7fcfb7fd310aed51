"""`regime-fetch --to DIR`: fetch every live source once into a folder laid out as a mirror.

    .venv/bin/regime-fetch --to snapshots/2024-07-17 [--as-of 2024-07-17]
    REGIME_SOURCE=mirror REGIME_MIRROR_DIR=snapshots/2024-07-17 make demo     # replay it

Every file the live ingests would fetch for the as-of date (default: the last NYSE session before today) is
fetched once, with the same HTTP client (timeouts, retries, honest User-Agent, size limits, REGIME_LIVE_BASE_URL)
and written, bytes as received, where mirror mode reads it (docs/sources.md): `cboe/<SYM>_History.csv`,
`yahoo/chart/<SYMBOL>.json` (when REGIME_YAHOO_INDEXES names any), `occ/volume-query/<day>/<UNDERLYING>.csv` for
the sessions of REGIME_OCC_LOOKBACK_SESSIONS, `cftc/fut_fin_txt_<year>.zip` from REGIME_CFTC_FIRST_YEAR (the yearly
zips, whatever REGIME_CFTC_VIA says: mirror mode reads zips), each ETF's issuer file
(`etf/ishares/<name>_fund.xls`, `etf/ssga/navhist-us-en-spy.xlsx`; QQQ and VTWO have no public GET source) and
Cboe's put/call volume history (`cboe/putcall/totalpc.csv`, `equitypc.csv`, `indexpc.csv`: an archive that ends
2019-10-04).

One progress line per file: its number, source, mirror path, size, and whether the project's parser accepts it. A
file that does not parse is kept all the same (the bytes to replay, or to attach to a bug report); a file the
publisher does not have (HTTP 404) is reported and not written. `regime-fetch.json` beside the files records each
one's URL, time, size and sha256. Run it into the same folder every day and the OCC day folders accumulate (OCC
keeps about two years). Exit code 0 when every file was obtained or is absent upstream, 1 when any could not be
fetched (network, HTTP error, size limit), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from regime.config import ConfigError, Settings, get_settings
from regime.sources import cboe, cboe_putcall, cftc, etf, occ, yahoo
from regime.sources.errors import SourceError, SourceMissing
from regime.sources.fetch import fetch_http

MANIFEST = "regime-fetch.json"


@dataclass(frozen=True)
class Target:
    source: str
    path: str  # relative to the snapshot folder: the mirror layout
    url: str
    check: Callable[[bytes, str], object]  # the project's parser: raises SourceError on bytes it refuses


def targets(settings: Settings, as_of: date) -> list[Target]:
    """Every file the live ingests fetch for `as_of`, at its mirror path."""
    from regime.calendar import sessions_until

    found = [Target(cboe.SOURCE, f"cboe/{cboe.file_name(s)}", cboe.url(s),
                    lambda data, where, s=s: cboe.parse(data, s, where)) for s in settings.indexes]
    found += [Target(yahoo.SOURCE, f"{yahoo.FOLDER}/{yahoo.file_name(symbol)}", yahoo.url(symbol, as_of),
                     lambda data, where, s=symbol: yahoo.parse(data, s, where)) for symbol, _ in settings.yahoo_indexes]
    for day in sessions_until(as_of, settings.occ_lookback_sessions):
        found += [Target(occ.SOURCE, f"{occ.FOLDER}/{occ.file_name(u, day)}", occ.url(u, day),
                         lambda data, where, u=u, d=day: occ.parse(data, where, u, d)) for u in settings.watchlist]
    found += [Target(cftc.SOURCE, f"cftc/{cftc.file_name(year)}", cftc.zip_url(year),
                     lambda data, where: cftc.parse_zip(data, where, markets=settings.cftc_markets))
              for year in range(settings.cftc_first_year, as_of.year + 1)]
    found += [Target(etf.SOURCE, etf.mirror_name(t, None), url, lambda data, where, t=t: etf.parse(data, where, t))
              for t in settings.etf_tickers if (url := etf.live_url(t))]
    found += [Target(cboe_putcall.SOURCE, f"{cboe_putcall.FOLDER}/{cboe_putcall.file_name(p)}", cboe_putcall.url(p),
                     lambda data, where, p=p: cboe_putcall.parse(data, p, where)) for p in cboe_putcall.PRODUCTS]
    return found


def _write(root: Path, relative: str, data: bytes) -> None:
    """Write atomically: a reader of the folder sees the old file or the new one, never half of one."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot(settings: Settings, as_of: date, to: Path, out=None) -> int:
    """Fetch every target into `to`; print progress to `out` (stdout); return the exit code (0 ok, 1 some failed)."""
    from regime.ingest import live_url

    out = out or sys.stdout
    to.mkdir(parents=True, exist_ok=True)
    manifest_path = to / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    todo = targets(settings, as_of)
    failed = absent = 0
    print(f"regime-fetch: {len(todo)} file(s) as of {as_of.isoformat()} into {to}", file=out, flush=True)
    for n, target in enumerate(todo, start=1):
        head = f"[{n}/{len(todo)}] {target.source:5} {target.path}"
        url = live_url(settings, target.url)
        try:
            fetched = fetch_http(url, Path(target.path).name, target.source, timeout=settings.http_timeout,
                                 max_bytes=settings.max_file_bytes(target.source))
        except SourceMissing as exc:
            absent += 1
            print(f"{head}: absent upstream ({exc.problem})", file=out, flush=True)
            continue
        except SourceError as exc:
            failed += 1
            print(f"{head}: FAILED: {exc.problem}", file=out, flush=True)
            continue
        _write(to, target.path, fetched.data)
        try:
            target.check(fetched.data, str(to / target.path))
            verdict = "parses"
        except SourceError as exc:
            verdict = f"kept, but the parser refuses it: {exc.problem}"
        manifest[target.path] = {"url": fetched.location, "fetched_at": fetched.fetched_at.isoformat(),
                                 "bytes": len(fetched.data), "sha256": hashlib.sha256(fetched.data).hexdigest()}
        print(f"{head}: {len(fetched.data):,} bytes, {verdict}", file=out, flush=True)
    _write(to, MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    saved = len(todo) - failed - absent
    print(f"regime-fetch: {saved} saved, {absent} absent upstream, {failed} failed; replay with REGIME_SOURCE=mirror "
          f"REGIME_MIRROR_DIR={to}", file=out, flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regime-fetch", description="Fetch every live source once into a folder "
                                     "laid out as a mirror (replay it with REGIME_SOURCE=mirror).")
    parser.add_argument("--to", required=True, type=Path, help="the folder to write (created if absent)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None,
                        help="YYYY-MM-DD (default: the last NYSE session before today)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.as_of is None:
        from regime.demo import live_as_of

        as_of = live_as_of()
    else:
        as_of = args.as_of
    if as_of > datetime.now(UTC).date():
        print(f"error: --as-of {as_of.isoformat()} is in the future", file=sys.stderr)
        return 2
    return snapshot(settings, as_of, args.to.expanduser().resolve())


if __name__ == "__main__":
    sys.exit(main())
