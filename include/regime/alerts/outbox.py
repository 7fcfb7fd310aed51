"""The alert outbox in the state store: every alert is recorded once (keyed by rule, indicator, subject
and episode), stays pending until a mail carrying it is accepted by the SMTP server, and is never mailed
again after that."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from regime import state
from regime.alerts.rules import Alert


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def enqueue(state_dir: Path, as_of: date, alerts: list[Alert]) -> int:
    """Record new alerts as pending; returns how many were new. An alert of an episode already recorded is not
    added again; while that episode's alert is still unsent, a later reading replaces its reading, value and
    message (the mail shows the latest reading, not the first); once sent it is never touched."""
    with state.connect(state_dir) as con:
        before = con.execute("select count(*) from alerts").fetchone()[0]
        con.executemany(
            "insert into alerts (alert_key, as_of, rule, indicator, subject, reading_date, value,"
            " message, state, attempts, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)"
            " on conflict (alert_key) do update set reading_date = excluded.reading_date, value = excluded.value,"
            " message = excluded.message"
            " where alerts.state != 'sent' and excluded.reading_date > alerts.reading_date",
            [(a.key, as_of.isoformat(), a.rule, a.indicator, a.subject, a.date.isoformat(), a.value,
              a.message, _now()) for a in alerts],
        )
        return con.execute("select count(*) from alerts").fetchone()[0] - before


def pending(state_dir: Path) -> list[dict]:
    with state.connect(state_dir) as con:
        con.row_factory = _dict_row
        return con.execute(
            "select * from alerts where state in ('pending', 'failed') order by case rule when 'zscore_threshold' "
            "then 0 when 'record' then 1 when 'long_since' then 2 else 3 end, abs(value) desc, created_at"
        ).fetchall()


def mark(state_dir: Path, keys: list[str], ok: bool, error: str | None = None,
         errors: dict[str, str] | None = None) -> None:
    """Count an attempt of each alert: `sent`, or `failed` with `error` (or its own in `errors`, by key). A failed
    alert stays in pending(): the next alert run tries it again."""
    errors = errors or {}
    with state.connect(state_dir) as con:
        con.executemany(
            "update alerts set attempts = attempts + 1, state = ?, last_error = ?, sent_at = ? "
            "where alert_key = ?",
            [("sent" if ok else "failed", errors.get(k, error), _now() if ok else None, k) for k in keys],
        )


def _dict_row(cursor, row) -> dict:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}
