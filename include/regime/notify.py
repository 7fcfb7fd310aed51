"""The operators' failure mail: Airflow's SmtpNotifier with a message that renders for every kind of run, sent
through the SMTP connection the settings name when it sends (REGIME_SMTP_CONN_ID, as the alert mails).

Manual and asset-triggered runs have no logical date (the template context has none): the message says the run's
type and as-of date from the run itself. Imported at DAG parse time: light (the SMTP provider only)."""

from __future__ import annotations

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

TO = "{{ var.value.get('regime_operator_to', 'regime-operators@localhost') }}"
SUBJECT = "[regime] {{ ti.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }})"
HTML = """
<p>Task <b>{{ ti.task_id }}</b> of DAG <b>{{ ti.dag_id }}</b> failed on try {{ ti.try_number }}.</p>
<p>Run: {{ run_id }} ({{ dag_run.run_type }}) &middot;
{% if (dag_run.conf or {}).get('as_of') %}as of {{ dag_run.conf['as_of'] }} (conf)
{%- elif dag_run.logical_date %}as of {{ dag_run.logical_date.strftime('%Y-%m-%d') }} (logical date)
{%- else %}no logical date (run after {{ dag_run.run_after }}){% endif %}</p>
<pre style="white-space: pre-wrap">{{ exception }}</pre>
<p><a href="{{ ti.log_url }}">Open the task log</a></p>
"""


class FailureNotifier(SmtpNotifier):
    """On a task's final failure, mail the operators (Airflow Variable `regime_operator_to`) the error and a link to
    the task log."""

    def __init__(self, **kwargs):
        super().__init__(to=TO, subject=SUBJECT, html_content=HTML, **kwargs)

    def notify(self, context):
        from regime.config import get_settings

        self.smtp_conn_id = get_settings().smtp_conn_id  # read when it sends, not when the DAG is parsed
        super().notify(context)
