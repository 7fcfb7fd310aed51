"""`python -m regime.ui` (`make ui`): start the UI and keep it running until Ctrl-C, or, with --screenshots,
take the screenshots of docs/operations.md and stop.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import date
from pathlib import Path

from regime.ui.config import DEFAULT_PORT, HOST, PORT_VARIABLE, Config, UiError, load_config
from regime.ui.screenshots import screenshots
from regime.ui.services import STOP_TIMEOUT, Ui, memory, start_mail_catcher


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C."""


def _on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def serve(config: Config) -> int:
    """`make ui`: start, print the banner, keep running until Ctrl-C / SIGTERM / SIGHUP, stop everything."""
    ui = Ui(config)
    try:
        ui.preflight()
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even where SIGINT was inherited ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    code = 0
    catcher = None
    print(f"Starting Airflow on {config.home} ({config.url}): api-server, scheduler, dag-processor, triggerer; "
          f"their logs in {config.logs}", flush=True)
    try:
        catcher = start_mail_catcher(ui)
        ui.start()
        ui.wait_ready(progress=lambda text: print(text, flush=True))
        use = memory(ui.services)
        print(f"\nReady in {ui.timings['healthy_s']} s: {use['processes']} processes, {use['pss_mib']} MiB "
              f"(PSS; RSS {use['rss_mib']} MiB)", flush=True)
        print(ui.banner(), flush=True)
        while True:
            ui.check_alive()
            time.sleep(1)
    except (KeyboardInterrupt, Stopped) as exc:
        print(f"\n{'Ctrl-C (SIGINT)' if isinstance(exc, KeyboardInterrupt) else exc}: stopping...", flush=True)
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # stopping is bounded (30 s, then SIGKILL): let it finish
        result = ui.stop()
        if catcher is not None:
            catcher.stop()
        killed = f"; killed after {STOP_TIMEOUT:.0f} s: {result['killed']}" if result["killed"] else ""
        print(f"Stopped {result['processes']} processes in {result['seconds']} s{killed}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regime.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help=f"the api-server's port on {HOST} (default: ${PORT_VARIABLE} or "
                                                  f"{DEFAULT_PORT})")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save PNGs of what an operator sees to DIR/ui-*.png (a temporary Airflow home on a free "
                             "port, regime_daily run from the trigger form) and stop")
    parser.add_argument("--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="with --screenshots: the date entered in the trigger form (default: the mirror's last "
                             "session)")
    args = parser.parse_args(argv)
    if args.screenshots:
        return screenshots(args.screenshots, args.as_of)
    try:
        config = load_config(port=args.port)
    except UiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
