"""The benchmark's output: the table of every step (markdown) and the history table (the update against history
size)."""

from __future__ import annotations

from plan import HISTORY_YEARS


def table(rows: list[dict]) -> str:
    head = ["section", "step", "rows", "seconds", "rows/s", "CPU s", "peak RSS MB", "pandas / DuckDB"]
    body = []
    for r in rows:
        rate = r["rows"] / r["seconds"] if r["rows"] and r["seconds"] else None
        body.append([r["section"], r["step"], f"{r['rows']:,}" if r["rows"] is not None else "",
                     f"{r['seconds']:.2f}", f"{rate:,.0f}" if rate else "",
                     f"{r['cpu']:.1f}" if r.get("cpu") is not None else "",
                     f"{r['rss']:,.0f}" if r["rss"] else "", f"{r['ratio']:.1f}x" if r["ratio"] else ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def flatness(rows: list[dict]) -> str:
    """The update against history size, and the full rebuild's extremes step per reading (its growth)."""
    if not rows:
        return ""
    out = ["| history | readings | full rebuild s | its extremes step s (us per reading) | one-day update s from the"
           " spare, median (runs) | of which lake check s | take the spare s | indicators + extremes + regime_daily s"
           " | analogs s | checkpoint s | update from a copy s (copy s, checkpoint s) | file MB |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        steps, full, first = r["steps"], r["full_steps"], r["first_steps"]
        check, copy = steps.get("staging", {}).get("seconds", 0), steps.get("copy", {}).get("seconds", 0)
        rest = sum(steps.get(s, {}).get("seconds", 0) for s in ("indicators", "extremes", "regime_daily"))
        runs = ", ".join(f"{u:.2f}" for u in r["updates"])
        ext = full["extremes"]
        out.append(f"| {r['scale']}x ({HISTORY_YEARS * r['scale']} y) | {r['history_readings']:,} | {r['full']:.1f} |"
                   f" {ext['seconds']:.2f} ({1e6 * ext['seconds'] / ext['rows']:.2f}) | {r['update']:.2f} ({runs}) |"
                   f" {check:.2f} | {copy:.2f} | {rest:.2f} | {steps.get('analogs', {}).get('seconds', 0):.2f} |"
                   f" {steps.get('checkpoint', {}).get('seconds', 0):.2f} |"
                   f" {r['first']:.2f} ({first.get('copy', {}).get('seconds', 0):.2f},"
                   f" {first.get('checkpoint', {}).get('seconds', 0):.2f}) | {r['size_mb']:.0f} |")
    out += ["", "| history | one-day update s, CPU s (median) | its gate s, CPU s (peak RSS MB) | daily update"
            " including its gate s, CPU s, median (runs) | full rebuild s, CPU s | its gate s, CPU s (peak RSS MB) |",
            "|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        dailies = ", ".join(f"{d:.2f}" for d in r["dailies"])
        out.append(f"| {r['scale']}x | {r['update']:.2f}, {r['update_cpu']:.1f} | {r['gate']:.2f}, {r['gate_cpu']:.1f}"
                   f" ({r['gate_rss']:,.0f}) | {r['daily']:.2f}, {r['daily_cpu']:.1f} ({dailies}) | {r['full']:.1f},"
                   f" {r['full_cpu']:.1f} | {r['full_gate']:.1f}, {r['full_gate_cpu']:.1f}"
                   f" ({r['full_gate_rss']:,.0f}) |")
    return "\n".join(out)


def bucket_table(rows: list[dict]) -> str:
    """The bucket section: a daily run with the lake in a folder and in a bucket, wall / CPU s by part."""
    if not rows:
        return ""
    out = ["| lake | run | as of | ingest: wall / CPU s | build_validate_publish: wall / CPU s | total: wall / CPU s |"
           " moto_server CPU s (ingest + build) | total CPU s, both processes | peak RSS MB | objects (files) written |"
           " MB uploaded (written) | objects (files) after |",
           "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ingest, bvp = r["steps"]["ingest"]["seconds"], r["steps"]["build_validate_publish"]["seconds"]
        moto = "–" if r["moto_cpu"] is None else f"{r['moto_cpu']:.1f} ({r['moto_ingest_cpu']:.1f} + " \
            f"{r['moto_bvp_cpu']:.1f})"
        out.append(f"| {r['lake']} | {r['run']} | {r['as_of']} | {ingest:.1f} / {r['ingest_cpu']:.1f} |"
                   f" {bvp:.1f} / {r['bvp_cpu']:.1f} | {r['seconds']:.1f} / {r['cpu_seconds']:.1f} | {moto} |"
                   f" {r['cpu_seconds'] + (r['moto_cpu'] or 0):.1f} | {r['peak_rss_mb']:,.0f} | {r['written']:,} |"
                   f" {r['uploaded_mb']:.2f} | {r['objects']:,} |")
    return "\n".join(out)
