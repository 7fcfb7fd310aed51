"""The operators' failure mail: Airflow's SmtpNotifier with a message that renders for every kind of run, sent
through the SMTP connection the settings name when it sends (REGIME_SMTP_CONN_ID, as the alert mails). One mail per
failed try of a task, however Airflow learns of the failure.

Manual and asset-triggered runs have no logical date (the template context has none): the message says the run's
type and as-of date from the run itself.

Where the callback runs (Airflow 3.3):

- A task that raises: its own process runs the task's `on_failure_callback` (FailureNotifier), with the error in
  the context (`exception`), before its supervisor reports the failure to the API server.
- A task whose supervisor died with it (the worker's machine, a killed worker) stops heartbeating: the scheduler
  fails it after `[scheduler] task_instance_heartbeat_timeout` and has the dag-processor run the task's
  `on_failure_callback` (a TaskCallbackRequest), with no `exception` in the context.
- A task process killed alone, e.g. by the out-of-memory killer or `kill -9` in the middle of a build: its
  supervisor reports the try failed and nothing runs the task's callback (apache/airflow#60858). The run then
  fails, and the scheduler has the dag-processor run the DAG's `on_failure_callback` (a DagCallbackRequest) with
  that task instance as `ti`: RunFailureNotifier, on each DAG, mails for it.

So that no try is mailed twice (a run that fails after a mailed task failure, a callback Airflow requests twice),
each mail is claimed first: a file `state/failure-mails/<task instance id>.<try>` in the data dir, which every
Airflow process shares, created only if absent (O_EXCL). A mail that could not be sent gives its claim back, so the
next callback for the same try sends it. The mail goes through regime.alerts.mail's client, with its connect and send
timeouts. Imported at DAG parse time: light (the SMTP provider only)."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from pathlib import Path

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

log = logging.getLogger(__name__)

TO = "{{ var.value.get('regime_operator_to', 'regime-operators@localhost') }}"
SUBJECT = "[regime] {{ ti.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }})"
HTML = """
<p>Task <b>{{ ti.task_id }}</b> of DAG <b>{{ ti.dag_id }}</b> failed on try {{ ti.try_number }}.</p>
<p>Run: {{ run_id }} ({{ dag_run.run_type.value if dag_run.run_type.value is defined else dag_run.run_type }}) &middot;
{% if (dag_run.conf or {}).get('as_of') %}as of {{ dag_run.conf['as_of'] }} (conf)
{%- elif dag_run.logical_date %}as of {{ dag_run.logical_date.strftime('%Y-%m-%d') }} (logical date)
{%- else %}no logical date (run after {{ dag_run.run_after }}){% endif %}</p>
{% if exception is defined and exception is not none -%}
<pre style="white-space: pre-wrap">{{ exception }}</pre>
{%- else -%}
<p>The task reported no error: its process ended without one (killed, e.g. by the out-of-memory killer, or it
stopped heartbeating). Its log says how far it got.</p>
{%- endif %}
<p><a href="{{ ti.log_url }}">Open the task log</a></p>
"""
CLAIMS = "failure-mails"  # under the state dir
KEEP_CLAIMS_DAYS = 90


class FailureNotifier(SmtpNotifier):
    """On a task's final failure, mail the operators (Airflow Variable `regime_operator_to`) the error and a link to
    the task log; once per failed try (see the module's docstring)."""

    def __init__(self, **kwargs):
        super().__init__(to=TO, subject=SUBJECT, html_content=HTML, **kwargs)

    def __call__(self, *args) -> None:
        # Rendering replaces the templates in place, and one instance serves every task of a DAG (default_args):
        # the dag-processor runs the callbacks of one DAG file with the same objects. Render and send a copy.
        SmtpNotifier.__call__(copy.copy(self), *args)

    def notify(self, context):
        from regime.config import get_settings

        settings = get_settings()
        self.smtp_conn_id = settings.smtp_conn_id  # read when it sends, not when the DAG is parsed
        ti = context["ti"]
        with _claimed(settings.state_dir / CLAIMS, ti) as first:
            if first:
                self._send()
            else:
                log.info("the failure of %s.%s (run %s, try %s) was mailed already", ti.dag_id, ti.task_id,
                         ti.run_id, ti.try_number)


    def _send(self) -> None:
        """Send the rendered mail with the alert mails' SMTP client, so REGIME_SMTP_CONNECT_TIMEOUT and
        REGIME_SMTP_SEND_TIMEOUT bound it (the provider's hook waits its connection's timeout on each of six tries:
        three minutes of a callback against a server that never answers) and a timeout says so."""
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        from airflow.providers.smtp.utils.emailer import get_email_address_list

        from regime.alerts import mail

        msg = EmailMessage()
        msg["Subject"] = " ".join(str(self.subject).split())
        msg["From"] = self.from_email or mail.sender(self.smtp_conn_id)
        msg["To"] = ", ".join(get_email_address_list(self.to))
        if self.cc:
            msg["Cc"] = ", ".join(get_email_address_list(self.cc))
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain="regime.localhost")
        msg.set_content(self.html_content, subtype="html")
        mail.send(msg, self.smtp_conn_id)


class RunFailureNotifier(FailureNotifier):
    """A DAG's `on_failure_callback`: when a run fails because a task failed, the operators' mail for that task
    (the one that ended last) unless FailureNotifier sent it already; that is, for a task whose process was killed
    (see the module's docstring). Runs in the dag-processor. A run failed otherwise (timed out, deadlocked) is not
    mailed here."""

    def __call__(self, *args) -> None:
        context = args[0] if len(args) == 1 else {}
        if context.get("reason") != "task_failure" or context.get("ti") is None:
            log.info("run %s failed (%s): no task failure to mail", context.get("run_id"), context.get("reason"))
            return
        super().__call__(*args)


@contextlib.contextmanager
def _claimed(folder: Path, ti):
    """Yield whether this process claimed the mail of `ti`'s try (False: it was claimed before). The claim is given
    back if the body raises. A folder that cannot be written does not stop the mail (it may then come twice)."""
    path = folder / f"{ti.id}.{ti.try_number}"
    fd, unclaimed = None, True
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        unclaimed = False
    except OSError as exc:
        log.warning("cannot record the failure mail in %s (%s): sending it anyway", folder, exc)
    if fd is None:
        yield unclaimed
        return
    with os.fdopen(fd, "w") as handle:
        json.dump({"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "try_number": ti.try_number,
                   "pid": os.getpid(), "at": time.time()}, handle)
    try:
        yield True
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _prune(folder)


def _prune(folder: Path) -> None:
    """Forget claims older than KEEP_CLAIMS_DAYS (a try is retried or mailed within days, not months)."""
    limit = time.time() - KEEP_CLAIMS_DAYS * 86400
    for old in folder.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < limit:
                old.unlink()
