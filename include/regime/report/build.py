"""The per-run HTML report: one self-contained file `<out_dir>/<as_of>.html` (inline CSS and SVG, no scripts,
no external resources; a Content-Security-Policy forbids the page from loading anything), written atomically.

Every section is rendered from whatever the published warehouse holds; a section without data says so
("No data for …") and a section that fails is reported in place, so the report itself never fails on data.

It stays one file (about 490 lines): it is the one page, its sections in page order with the entry points that
write it; the charts are regime/report/charts.py, the numbers' formats regime/report/fmt.py."""

from __future__ import annotations

import html
import logging
import numbers
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from regime import words
from regime.config import Settings
from regime.report import charts, fmt, plot
from regime.report.data import ReportData, load
from regime.sql import connect_readonly

log = logging.getLogger(__name__)

# (indicator, subject) shown in the regime summary, in this order, when the warehouse has them.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("zscore_50d", "RUT"),
    ("zscore_50d", "SPX"),
    ("zscore_50d", "NDX"),
    ("zscore_50d", "DJX"),
    ("rel_ret_5d", "RUT/SPX"),
    ("rel_ret_20d", "RUT/SPX"),
    ("price_ratio", "RUT/SPX"),
    ("vol_corr_5d", "RUT~RVX"),
    ("call_volume_5d", "IWM"),
    ("call_put_ratio_5d", "IWM"),
    ("net_pct_oi", "239742:lev_money"),
    ("net_pct_oi", "239742:asset_mgr"),
    ("etf_flow_5d_pct_spread", "small-large"),
)
HOT_WORDS = ("squeeze", "stress", "panic", "crash", "capitulation", "melt", "extreme")


def e(value) -> str:
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    return f'<p class="nodata">{e(text)}</p>'


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    short: str  # "no data for <short>"
    chart: Callable[[ReportData], plot.Chart | None]
    needs: str  # what is missing when the chart has nothing to draw ("no data for …")
    look: str  # the caption: what to look at
    today: tuple[tuple[str, str], ...] = ()  # readings quoted under the chart


SECTIONS: tuple[Section, ...] = (
    Section("relative", "Russell 2000 vs S&P 500: relative performance", "RUT vs SPX relative performance",
            charts.relative_performance,
            "rel_ret_5d / rel_ret_20d of 'RUT/SPX'",
            "Above zero, small caps beat large caps over the window. Watch the 5-session line: a jump far above its "
            "two-year range marks a violent rotation into small caps. Shaded: sessions whose regime label was not "
            "'normal'.", (("rel_ret_5d", "RUT/SPX"), ("rel_ret_20d", "RUT/SPX"))),
    Section("zscores", "Stretch: z-score vs the 50-day average", "the index z-scores", charts.zscores,
            "zscore_50d of any index",
            "How many standard deviations each close sits above (+) or below (−) its own 50-session average. "
            "Beyond ±2σ is stretched, beyond ±3σ is rare (the alert threshold). Look for RUT outside its bands while "
            "the large-cap indexes stay inside.", (("zscore_50d", "RUT"), ("zscore_50d", "SPX"))),
    Section("ratio", "RUT/SPX price ratio, full history", "the RUT/SPX price ratio", charts.price_ratio,
            "price_ratio of 'RUT/SPX'",
            "A falling line means small caps lag large caps. Compare today's level (dotted line) with the whole "
            "history: a sharp bounce off a multi-year low is what a small-cap squeeze looks like on this scale.",
            (("price_ratio", "RUT/SPX"),)),
    Section("volcorr", "Vol-spot correlation", "vol-spot correlation", charts.vol_correlation,
            "vol_corr_5d ('RUT~RVX', 'SPX~VIX')",
            "Normally strongly negative: volatility rises when the index falls. Near zero or positive means "
            "volatility and prices rise together, typical of a squeeze or a crowded chase rather than calm.",
            (("vol_corr_5d", "RUT~RVX"), ("vol_corr_5d", "SPX~VIX"))),
    Section("calls", "Call volume: IWM vs large caps", "call volume (OCC options)", charts.call_volume,
            "call_volume_5d of IWM or of a large-cap name",
            "Top: 5-session call contracts, log scale. Bottom: IWM calls relative to the large-cap name; a rising "
            "line means speculative demand is moving to small caps.",
            (("call_volume_5d", "IWM"), ("call_put_ratio_5d", "IWM"))),
    Section("positioning", "Futures positioning percentiles (CFTC)", "CFTC positioning", charts.positioning,
            "net_pct_oi of any CFTC market:class (Traders in Financial Futures)",
            "Each bar: where a trader group's net position (long − short, % of open interest) sits within its own "
            "history. Red bars are crowded longs, blue bars crowded shorts; a squeeze needs a crowded short, e.g. "
            "leveraged funds in Russell 2000 futures, being forced to cover.",
            (("net_pct_oi", "239742:lev_money"),)),
    Section("flows", "ETF flows", "ETF flows", charts.etf_flows,
            "etf_flow_5d_pct / etf_flow_5d_pct_spread (ETF NAV and shares)",
            "Money entering (+) or leaving (−) each fund over 5 sessions, as % of its assets: small-cap funds solid "
            "and warm, large-cap funds dashed and cool. The spread is green while small-cap funds grow faster.",
            (("etf_flow_5d_pct_spread", "small-large"),)),
)

CSS = """
:root{--ink:#202124;--muted:#5f6368;--line:#dadce0;--bg:#f8f9fa;--hot:#c5221f;--warn:#b06000;--ok:#137333}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
 font:15px/1.5 "DejaVu Sans","Liberation Sans","Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1140px;margin:0 auto;padding:24px 28px 48px}
header{border-bottom:3px solid var(--ink);padding-bottom:12px;margin-bottom:8px}
h1{font-size:26px;margin:0 0 4px}
h1 .asof{color:var(--muted);font-weight:normal}
.headlines{border-left:4px solid #d93025;padding:4px 0 4px 14px;margin:14px 0}
.headlines p{margin:4px 0;font-size:15px}.headlines p.lead{font-size:19px;font-weight:600}
h2{font-size:19px;margin:0 0 10px}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:var(--muted);font-size:13px;margin:2px 0}
nav{font-size:13px;margin:10px 0 18px;display:flex;flex-wrap:wrap;gap:4px 16px}
nav a{color:#1a56c4;text-decoration:none;white-space:nowrap}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:0 0 18px}
.regime{display:flex;gap:20px;align-items:center;margin-bottom:10px}
.regime .kv{flex:1;margin:0}
.badge{display:inline-block;font-size:22px;font-weight:bold;padding:8px 18px;border-radius:6px;color:#fff}
.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.hot{background:var(--hot)}
.badge.none{background:#9aa0a6}
.kv{font-size:13px;color:var(--muted)}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}
.chip{font-size:12px;border:1px solid var(--line);border-radius:12px;padding:1px 9px;background:var(--bg)}
.chip.hot{border-color:#f3b6b3;background:#fce8e6}
table{border-collapse:collapse;width:100%;font-size:14px;margin:6px 0}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;font-weight:600}
tr.record td{background:#fef7e0}
.tag{white-space:nowrap;font-size:11px;font-weight:bold;padding:1px 6px;border-radius:4px;color:#fff;
 background:var(--hot)}
.tag.low{background:#1a56c4}
figure{margin:4px 0 0}
svg.chart{display:block;width:100%;height:auto}
svg.chart *{stroke-linejoin:round;stroke-linecap:butt}
figcaption{font-size:13.5px;color:#3c4043;margin-top:6px;border-left:3px solid var(--line);padding-left:10px}
figcaption b{color:var(--ink)}
.nodata{color:var(--warn);background:#fef7e0;border:1px solid #fce8b2;border-radius:6px;padding:8px 12px;
 font-size:14px;margin:6px 0}
footer{font-size:12px;color:var(--muted)}
"""


# --- sections ----------------------------------------------------------------------------------------------------

def _header(data: ReportData) -> str:
    info = data.build_info or {}
    built = info.get("built_at")
    built_text = pd.Timestamp(built).strftime("%Y-%m-%d %H:%M UTC") if built is not None and not pd.isna(built) \
        else "unknown (meta.build_info is missing)"
    source = info.get("source") or "unknown"
    origin = info.get("origin")
    source_text = f"{source} ({origin})" if origin and origin != source else source
    lines = [f"Warehouse built {built_text} · source: {source_text}"]
    warehouse_as_of = info.get("as_of")
    if warehouse_as_of is not None and not pd.isna(warehouse_as_of) \
            and pd.Timestamp(warehouse_as_of).date() != data.as_of:
        lines.append(f"Note: the warehouse was built as of {fmt.day(warehouse_as_of)}.")
    if data.validation is not None:
        lines.append(_validation_line(data.validation))
    lines.append(f"Report generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    what_next = () if "marts.episodes" in data.missing else (("whatnext", WHAT_NEXT),)
    nav = "".join(f'<a href="#{k}">{e(t)}</a>' for k, t in
                  (("summary", "Summary"), ("records", "Records"), *what_next,
                   *((s.key, s.title) for s in SECTIONS)))
    return (f'<header><h1>Small-cap regime report <span class="asof">as of {e(data.as_of.isoformat())}</span></h1>'
            + "".join(f'<p class="meta">{e(line)}</p>' for line in lines) + f"</header><nav>{nav}</nav>")


def _headlines(data: ReportData) -> str:
    """The day's headlines (marts.headlines): what was historic, in the article's language."""
    if not data.headlines:
        return ""
    first, *rest = data.headlines
    return ('<section id="headlines" class="headlines">' + f"<p class=\"lead\">{e(first)}</p>"
            + "".join(f"<p>{e(h)}</p>" for h in rest) + "</section>")


def _validation_line(runs: pd.DataFrame) -> str:
    total = len(runs)
    if "success" not in runs.columns:
        return f"Validation: {total} checks"
    failed = runs[runs["success"].astype(float) < 1]
    if failed.empty:
        return f"Validation: all {total} checks passed"
    severity = failed["severity"].astype(str) if "severity" in failed.columns else pd.Series(["?"] * len(failed))
    counts = severity.value_counts()
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"Validation: {total} checks, {len(failed)} not passed ({parts})"


def _label_class(label: str) -> str:
    low = label.strip().lower()
    if low == "normal":
        return "ok"
    if low in ("", "insufficient history", "unlabelled"):
        return "none"
    return "hot" if any(w in low for w in HOT_WORDS) else "warn"


def _value_for_column(data: ReportData, column: str, value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real):
        if pd.isna(value):
            return "—"
        indicator = words.REGIME_COLUMNS.get(column, (column, None))[1]
        if indicator is not None:
            return data.units.text(indicator, value)
        return words.number("number", float(value))
    return str(value)


def _records_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, numbers.Real):
        if pd.isna(value):
            return None
        n = int(value)
        return f"{n} record{'s' if n != 1 else ''} set today"
    if isinstance(value, str):
        return f"Records today: {words.records_text(value)}" if value.strip() else None
    try:
        items = [str(v) for v in value]
    except TypeError:
        return str(value)
    return f"Records: {', '.join(items)}" if items else "no records today"


def _summary(data: ReportData) -> str:
    out = ['<section id="summary"><h2>Regime summary</h2>']
    today = data.regime_today()
    if today is None:
        out.append(note("No data for the regime label: marts.regime_daily is missing or has no row up to "
                        f"{data.as_of.isoformat()}."))
    else:
        label = str(today.get("label") or "unlabelled")
        when = pd.Timestamp(today["date"]).date()
        stale = "" if when == data.as_of else f" (latest label, from {when.isoformat()}: no row for the as-of date)"
        records = _records_text(today.get("records"))
        out.append(f'<div class="regime"><span class="badge {_label_class(label)}">{e(label)}</span>'
                   f'<p class="kv">regime label on {e(when.isoformat())}{e(stale)}'
                   f'{"<br>" + e(records) if records else ""}</p></div>')
        recent = data.regime.tail(10)
        chips = "".join(
            f'<span class="chip{" hot" if _label_class(str(lab)) != "ok" else ""}">'
            f"{e(pd.Timestamp(d).strftime('%m-%d'))} {e(lab)}</span>"
            for d, lab in zip(recent["date"], recent.get("label", pd.Series([""] * len(recent))), strict=False))
        out.append(f'<div class="kv">labels of the last {len(recent)} sessions</div><div class="chips">{chips}</div>')
        extra = [c for c in data.regime.columns if c not in ("date", "label", "records")]
        if extra:
            items = "".join(f'<span class="chip" title="{e(c)}">{e(words.REGIME_COLUMNS.get(c, (c,))[0])}: '
                            f"<b>{e(_value_for_column(data, c, today.get(c)))}</b></span>" for c in extra)
            out.append(f'<div class="kv" style="margin-top:10px">inputs of the label</div>'
                       f'<div class="chips">{items}</div>')
    out.append("<h3>Headline readings</h3>")
    out.append(_headline_table(data))
    out.append("</section>")
    return "".join(out)


def _headline_pairs(data: ReportData) -> list[tuple[str, str]]:
    from regime.indicators import REGISTRY

    pairs = list(HEADLINE)
    shown = {name for name, _ in HEADLINE}
    for indicator in REGISTRY:  # a headline indicator this list does not know yet: its first few subjects
        if indicator.headline and indicator.name not in shown:
            pairs += [(indicator.name, s) for s in data.subjects(indicator.name)[:4]]
    return pairs


def _headline_table(data: ReportData) -> str:
    rows = []
    for indicator, subject in _headline_pairs(data):
        latest = data.latest(indicator, subject)
        if latest is None:
            continue
        record = bool(latest.get("is_record_high")) or bool(latest.get("is_record_low"))
        has_context = "pct_rank" in latest
        reading_day = pd.Timestamp(latest["date"]).date()
        when = "" if reading_day == data.as_of else f'<br><span class="kv">reading of {reading_day.isoformat()}</span>'
        rows.append(
            f'<tr{" class=record" if record else ""}>'
            f"<td>{e(words.reading_name(indicator, subject))}{when}</td>"
            f'<td class="num">{e(data.units.text(indicator, latest["value"]))}</td>'
            f"<td>{e(words.percentile(latest.get('pct_rank')) if has_context else '—')}</td>"
            f"<td>{_since_cell(latest, data.as_of) if has_context else '—'}</td></tr>")
    if not rows:
        return note("No data for headline readings: marts.indicators has no readings up to "
                    f"{data.as_of.isoformat()}.")
    pre = "" if data.extremes is not None else note(
        "No data for percentiles and “highest since” context: marts.extremes is missing or empty.")
    return (pre + "<table><thead><tr><th>Reading</th><th>Value</th><th>Percentile of its history</th>"
            "<th>Context</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _since_cell(row: dict, as_of: date) -> str:
    text = e(words.since_phrase(row))
    if row.get("is_record_high"):
        return f'<span class="tag">RECORD HIGH</span> {text}'
    if row.get("is_record_low"):
        return f'<span class="tag low">RECORD LOW</span> {text}'
    return text


def _records(data: ReportData) -> str:
    out = [f'<section id="records"><h2>Records of the day ({e(data.as_of.isoformat())})</h2>']
    records = data.records()
    if records is None:
        out.append(note("No data for records of the day: marts.extremes is missing or empty."))
    elif records.empty:
        out.append(f"<p>No indicator set a record high or low on {e(data.as_of.isoformat())}.</p>")
    else:
        rows = []
        for row in records.to_dict("records"):
            indicator, subject = row["indicator"], row["subject"]
            high = bool(row.get("is_record_high"))
            history = data.series(indicator, subject)
            before = history[history["date"] < data.as_of_ts]
            prev = ""
            if not before.empty:
                at = before.loc[before["value"].idxmax() if high else before["value"].idxmin()]
                prev = words.previous_text(indicator, row, (at["date"], at["value"]))
            rows.append(
                f"<tr><td>{e(words.indicator_name(indicator))}</td><td>{e(words.subject_name(subject))}</td>"
                f'<td class="num">{e(data.units.text(indicator, row["value"]))}</td>'
                f'<td><span class="tag{"" if high else " low"}">{"RECORD HIGH" if high else "RECORD LOW"}</span></td>'
                f'<td class="num">{e(prev or "—")}</td><td>{e(fmt.day(row.get("history_start")))}</td>'
                f"<td>{e(words.percentile(row.get('pct_rank')))}</td></tr>")
        out.append("<table><thead><tr><th>Reading</th><th>Subject</th><th>Value</th><th>Record</th>"
                   "<th>Previous extreme</th><th>History since</th><th>Percentile</th></tr></thead><tbody>"
                   + "".join(rows) + "</tbody></table>")
        out.append(f'<p class="kv">{len(rows)} record{"s" if len(rows) != 1 else ""}: the reading is beyond every '
                   "earlier reading of the same series in the warehouse.</p>")
    out.append("</section>")
    return "".join(out)


def _today_sentence(data: ReportData, pairs: tuple[tuple[str, str], ...]) -> str:
    parts = []
    for indicator, subject in pairs:
        latest = data.latest(indicator, subject)
        if latest is None:
            continue
        value = data.units.text(indicator, latest["value"])
        text = f"{words.reading_name(indicator, subject)} {value}"
        if "pct_rank" in latest:
            text += f" ({words.since_phrase(latest)}; {words.percentile(latest.get('pct_rank'))})"
        parts.append(text)
    return f"<b>Today:</b> {e('; '.join(parts))}." if parts else ""


def _chart_section(data: ReportData, section: Section) -> str:
    head = f'<section id="{section.key}"><h2>{e(section.title)}</h2>'
    chart = section.chart(data)
    if chart is None:
        return head + note(f"No data for {section.short}: marts.indicators has no {section.needs} "
                           f"up to {data.as_of.isoformat()}.") + "</section>"
    today = _today_sentence(data, section.today)
    return (f"{head}<figure>{chart.svg}<figcaption>{e(section.look)}{' ' + today if today else ''}"
            "</figcaption></figure></section>")


def _guarded(what: str, render: Callable[[], str], section_id: str | None = None) -> str:
    try:
        return render()
    except Exception as exc:  # a broken section must not cost the whole report
        log.exception("report: could not render %s", what)
        body = note(f"Could not render {what}: {exc.__class__.__name__}: {exc}")
        return f'<section id="{section_id}"><h2>{e(what)}</h2>{body}</section>' if section_id else body


WHAT_NEXT = "What happened next"


def _what_next(data: ReportData) -> str:
    """The past episodes like today's (regime.analogs): their paths as small multiples with today's so far, and what
    followed them in words (regime.words); nothing in a warehouse without marts.episodes."""
    from regime import analogs

    if "marts.episodes" in data.missing:
        return ""
    head = f'<section id="whatnext"><h2>{e(WHAT_NEXT)}</h2>'
    found = data.analogs
    if found is None:
        return (head + f"<p>No headline reading is in an episode beyond a configured threshold on "
                f"{e(data.as_of.isoformat())}: nothing to compare with.</p></section>")
    what = words.episode_text(found.indicator, found.subject, found.kind, found.threshold, found.side)
    count = len(found.earlier)
    intro = (f"<p><b>{e(what)}</b> since {e(found.current.start_date.isoformat())} "
             f"({e(words.value_text(found.indicator, found.value))} on {e(found.day.isoformat())}): "
             f"{count} earlier episode{'' if count == 1 else 's'} in the warehouse's history.</p>")
    lines = []
    for which in ("index", "pair"):
        for h in analogs.FORWARD_HORIZONS:
            s = analogs.summarize(found, which, h)
            lines.append(words.analog_summary(s.subject, h, s.count, s.median, s.negative, s.best, s.worst))
    caveat = words.analog_caveat(count, analogs.MIN_EPISODES)
    chart = charts.analog_paths(data)
    figure = ""
    if chart is not None:
        figure = (f"<figure>{chart.svg}<figcaption>Each panel: {e(words.subject_name(found.index))} over the "
                  "sessions after an earlier episode's first close, in % of that close (grey), and this episode so "
                  "far (in colour). Returns are from the close of each episode's first session; what a path did "
                  "after its episode is not a forecast.</figcaption></figure>")
    return (head + intro + figure + "<ul>" + "".join(f"<li>{e(line)}</li>" for line in lines) + "</ul>"
            + (note(caveat) if caveat else "") + "</section>")


def _footer(data: ReportData) -> str:
    missing = ", ".join(data.missing) if data.missing else "none"
    return (f"<footer><p>Tables missing or empty in this warehouse: {e(missing)}. Percentiles and “since” dates "
            "come from marts.extremes and cover the history held in the warehouse. Generated by regime.report."
            "</p></footer>")


def render_html(data: ReportData) -> str:
    body = [
        _guarded("the header", lambda: _header(data)),
        _guarded("the headlines", lambda: _headlines(data)),
        _guarded("Regime summary", lambda: _summary(data), "summary"),
        _guarded("Records of the day", lambda: _records(data), "records"),
        _guarded(WHAT_NEXT, lambda: _what_next(data), "whatnext"),
        *(_guarded(s.title, lambda s=s: _chart_section(data, s), s.key) for s in SECTIONS),
        _guarded("the footer", lambda: _footer(data)),
    ]
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Small-cap regime report {e(data.as_of.isoformat())}</title><style>{CSS}</style></head>"
            "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")


# --- entry points ------------------------------------------------------------------------------------------------

def _as_date(as_of) -> date:
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    return date.fromisoformat(str(as_of)[:10])


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_report(warehouse_path: Path | str, as_of, out_dir: Path | str) -> Path:
    """Render `<out_dir>/<as_of>.html` from the published warehouse (opened read-only) and return its path."""
    as_of = _as_date(as_of)
    con = connect_readonly(Path(warehouse_path))
    try:
        data = load(con, as_of)
    finally:
        con.close()
    page = render_html(data)
    target = Path(out_dir) / f"{as_of.isoformat()}.html"
    write_atomic(target, page)
    log.info("report: wrote %s (%d kB; missing: %s)", target, len(page.encode()) // 1024,
             ", ".join(data.missing) or "nothing")
    return target


def write_report(settings: Settings, as_of) -> Path:
    """The pipeline's entry point: `$REGIME_DATA_DIR/reports/<as_of>.html` from the published warehouse."""
    return render_report(settings.warehouse_path, as_of, settings.data_dir / "reports")
