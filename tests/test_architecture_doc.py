"""docs/architecture.md stays true: its module map names every module of the package and nothing that is not there,
every file it names exists, and each recipe's steps hold for every indicator, dataset, alert rule and suite built
that way so far."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from regime import SQL_DIR, datasets
from regime.alerts.rules import RULES
from regime.indicators import REGISTRY
from regime.ingest import INGESTERS
from regime.orchestration import LAKE
from regime.validation import gate, scope

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "include" / "regime"
DOC = (PROJECT / "docs" / "architecture.md").read_text()
DOCS = PROJECT / "docs"
TESTS = PROJECT / "tests"


def _named_modules() -> set[str]:
    """Every `regime.x[.y]` the page names (in code spans and in the diagram), a trailing `.*` dropped."""
    return {m.rstrip(".") for m in re.findall(r"\bregime(?:\.[a-z_]+)+\.?", DOC)}


def _package_modules() -> set[str]:
    """regime.<name> for every top-level module and subpackage of include/regime."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return {f"regime.{n}" for n in names}


def test_the_module_map_names_every_module_of_the_package():
    missing = _package_modules() - _named_modules()
    assert not missing, f"docs/architecture.md does not place {sorted(missing)} in its module map"


def test_every_module_the_page_names_exists():
    for name in sorted(_named_modules()):
        importlib.util.find_spec(name) or pytest.fail(f"docs/architecture.md names {name}, which does not exist")


@pytest.mark.parametrize("package", ["sources", "validation"])
def test_the_submodules_listed_in_the_map_are_all_there(package):
    row = next(line for line in DOC.splitlines() if f"`regime.{package}` (" in line)
    listed = set(re.findall(r"`([a-z_]+)`", row.split(f"`regime.{package}` (")[1].split(")")[0]))
    actual = {p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__"}
    assert listed <= actual
    if package == "sources":  # every parser module is listed; validation says "one suite module per table"
        assert listed == actual


def test_every_file_the_page_names_exists():
    paths = set(re.findall(r"`((?:include|dags|plugins|tests|docs)/[^`<>*]+)`", DOC))
    paths |= set(re.findall(r"\b((?:dags|plugins)/[a-z_]+\.py)", DOC))
    assert paths
    for path in sorted(paths):
        assert (PROJECT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def _tests_text() -> str:
    return "\n".join(p.read_text() for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name)


def test_recipe_indicator_holds_for_every_indicator():
    doc = (DOCS / "indicators.md").read_text()
    tests = _tests_text()
    for indicator in REGISTRY:
        assert indicator.sql.startswith("indicators/") and (SQL_DIR / indicator.sql).is_file(), indicator.name
        assert re.search(rf"\*\*{indicator.name}\*\*|\*\*[a-z_0-9, ]*\b{indicator.name}\b[a-z_0-9, ]*\*\*", doc), (
            f"docs/indicators.md has no paragraph for {indicator.name}")
        assert re.search(rf"['\"]{indicator.name}['\"]", tests), f"no test names the indicator {indicator.name}"


def _dict_keys(path: Path, name: str) -> set[str]:
    """The string keys of the module-level dict literal `name` in `path` (read without importing the DAG file)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {k.value for k in node.value.keys}
    raise AssertionError(f"{path} has no {name}")


def test_recipe_source_holds_for_every_dataset():
    names = {d.name for d in datasets.ALL}
    assert set(INGESTERS) == names
    assert set(LAKE) == names
    assert _dict_keys(PROJECT / "dags" / "ingest.py", "SCHEDULES") == names
    # the suite of each dataset: the one checking its staging table; index_prices is checked as marts.prices, its
    # row-for-row projection (the suite `prices`)
    suites = {s.TABLE.removeprefix("staging."): s.NAME for s in gate.SUITES}
    suites["index_prices"] = suites.pop("marts.prices")
    sources_doc = (DOCS / "sources.md").read_text()
    for name in sorted(names):
        assert (SQL_DIR / "staging" / f"{name}.sql").is_file(), name
        assert name in suites, f"{name}: no suite in gate.SUITES checks staging.{name}"
        assert suites[name] in scope.SPECS, f"{name}: its suite has no entry in scope.SPECS"
        assert re.search(rf"^## .*dataset `{name}`", sources_doc, re.M), f"docs/sources.md has no section on {name}"


def test_recipe_alert_rule_holds_for_every_rule():
    alerts_doc = (DOCS / "alerts.md").read_text()
    tests = _tests_text()
    used = {rule.sql for rule in RULES}
    assert used == {f"alerts/{p.name}" for p in (SQL_DIR / "alerts").glob("*.sql")}  # no rule file left unused
    for rule in RULES:
        assert re.search(rf"^\|\s*`?{rule.name}`?\s*\|", alerts_doc, re.M), f"docs/alerts.md: no row for {rule.name}"
        assert rule.name in tests, f"no test names the rule {rule.name}"


def test_recipe_validation_check_every_suite_module_is_in_the_gate():
    in_gate = {s.__name__ for s in gate.SUITES if hasattr(s, "__name__")}
    for path in sorted((PACKAGE / "validation").glob("*.py")):
        module = importlib.import_module(f"regime.validation.{path.stem}")
        if hasattr(module, "NAME") and hasattr(module, "expectations"):
            assert module.__name__ in in_gate, f"{module.__name__} is a suite not listed in gate.SUITES"
    steps = (DOCS / "validation.md").read_text()
    assert "## Adding an expectation" in steps and "`SUITES`" in steps and "`SPECS`" in steps
