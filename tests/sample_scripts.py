"""The bundled sample's generator scripts (`include/sample/<name>.py`: scripts, not a package) loaded as modules,
and the NYSE sessions they lay their files on."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

SAMPLE_SCRIPTS = Path(__file__).resolve().parents[1] / "include" / "sample"


def load(name: str) -> ModuleType:
    """`include/sample/<name>.py` as the module `name` (loaded once per process)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SAMPLE_SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def nyse_sessions(first: str, last: str) -> list[date]:
    import exchange_calendars as xcals

    return [ts.date() for ts in xcals.get_calendar("XNYS").sessions_in_range(first, last)]
