"""`make ui`: Airflow's web UI on a laptop, on the embedded SQLite metadata DB that `make demo` writes its runs to.

    make ui                                   # http://127.0.0.1:8080; another port: make ui REGIME_UI_PORT=8081
    python -m regime.ui --screenshots docs/img   # the screenshots of docs/operations.md (headless Chromium)

One command starts Airflow's api-server (the UI and the REST API), scheduler, dag-processor and triggerer on
AIRFLOW_HOME (the Makefile's `.airflow/`), waits until the api-server answers and reports the other three healthy,
then prints the URL, the user name, its password and the file that keeps it, and how to stop. Ctrl-C (SIGINT),
SIGTERM or SIGHUP stops every process it started.

The four run as separate processes (as in docker-compose.yml), not as `airflow standalone`, because:

- everything must listen on 127.0.0.1 only: standalone's scheduler and triggerer also run a log server on every
  interface (0.0.0.0:8793 and :8794). Here they run with `--skip-serve-logs` (the api-server reads the task logs
  from AIRFLOW_HOME/logs on the same machine) and the api-server is bound to 127.0.0.1;
- stopping must be clean: standalone ends its children with SIGTERM from threads, and a SIGTERM to standalone
  itself leaves dozens of processes behind. Here each process is started in a process group of its own and is
  stopped by its pid: SIGTERM to its group, then, after 30 s, SIGKILL to the group and to every descendant seen
  before (Airflow puts each task's process in a group of its own) that is still alive;
- the password is printed every time (standalone prints a generated password only the first time), and the
  processes' output goes to one log file each (AIRFLOW_HOME/logs/ui/<name>.log) instead of interleaving on the
  terminal.

It is kept light for a laptop: parallelism 4 (AIRFLOW__CORE__PARALLELISM), one api-server worker, one parsing
process. Settings already in the environment win (e.g. AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION from the
Makefile), except the ones that make the processes reach each other on 127.0.0.1:<port>. One UI per AIRFLOW_HOME
(a lock file, AIRFLOW_HOME/regime-ui.lock). Without an SMTP connection, as in `make demo`, a local mail catcher keeps
the mails of the runs triggered from the UI in <data dir>/demo-mail, so that their send_alerts task can succeed.

The modules: config (settings, port, passwords, the services' environment), services (the processes, their health,
stopping them, the mail catcher), screenshots (the Chromium tour) and __main__ (the command).
"""
