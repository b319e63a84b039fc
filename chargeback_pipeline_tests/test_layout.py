"""The package's rooms keep their import rules (each folder's docstring states them), nothing reads the
environment at import, and the README's layout section names every room there is."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargeback_pipeline_tests.conftest import REPO

PACKAGE = REPO / "chargeback_pipeline"
# Room (a module path prefix) -> the rooms it may import from. The most specific prefix wins.
ALLOWED = {
    "core": {"core", "storage"},
    "core.billing": {"core.billing", "core.periods", "storage.schemas"},
    # The audit's evidence shares no code with what it judges (README: Checks, "independent evidence").
    "core.audit": {"core.audit", "core.periods", "storage"},
    "storage": {"storage"},
    "sources": {"sources", "storage"},
    "standins": {"standins", "sources", "storage"},
    "defs": {"core", "storage", "sources", "defs"},
    "settings": {"core", "storage", "sources", "settings"},
    "definitions": {"core", "storage", "sources", "defs", "settings"},
    "cli": {"core", "storage", "sources", "defs", "settings", "definitions", "cli"},
}
# Rooms that must not import Dagster; a source's Dagster glue lives in its `resource.py` only.
DAGSTER_FREE = ("core", "storage", "sources", "standins")


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def imports_of(path: Path) -> list[str]:
    """Every module an import statement names, at module level or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def room_of(module: str) -> str | None:
    matches = [room for room in ALLOWED if module == room or module.startswith(room + ".")]
    return max(matches, key=len) if matches else None


def under(module: str, rooms: set[str]) -> bool:
    return any(module == room or module.startswith(room + ".") for room in rooms)


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m or "package" for m, _ in modules()])
def test_each_module_imports_only_what_its_room_allows(module, path):
    room = room_of(module)
    own = [n.removeprefix("chargeback_pipeline.") for n in imports_of(path) if n.startswith("chargeback_pipeline.")]
    if room is not None:
        wrong = [n for n in own if not under(n, ALLOWED[room])]
        assert wrong == [], f"{module} ({room}) may import only {sorted(ALLOWED[room])}"
    if room in DAGSTER_FREE and not module.endswith(".resource") and not module.endswith(".registry"):
        assert not [n for n in imports_of(path) if n == "dagster" or n.startswith("dagster.")], module


def test_every_folder_says_what_lives_there_and_what_it_may_import():
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(REPO)} has no docstring"
    for room in ("core", "core/billing", "storage", "sources", "defs", "standins", "cli"):
        doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text(encoding="utf-8")))
        assert "import" in doc, f"{room}/__init__.py does not say what it may import"


IMPORT_EVERYTHING = """
import importlib, os, pkgutil, sys
reads = []
real_getenv, real_get = os.getenv, os.environ.get
os.getenv = lambda key, *a: (reads.append(key) if key.startswith("CHARGEBACK_") else None) or real_getenv(key, *a)
import chargeback_pipeline
for info in pkgutil.walk_packages(chargeback_pipeline.__path__, "chargeback_pipeline."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(sorted(set(reads)))
"""


def test_importing_every_module_reads_no_setting_and_no_pricing_file(tmp_path):
    """With a pricing file that does not exist and a malformed setting, every module still imports:
    nothing is read until the definitions are built."""
    env = {
        **os.environ,
        "CHARGEBACK_PRICING_FILE": str(tmp_path / "missing.yaml"),
        "CHARGEBACK_CATCHUP_HOURS": "not a number",
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_readme_layout_names_every_room():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout") :]
    section = section.split("\n## ", 1)[0] if "\n## " in section[4:] else section
    rooms = sorted({p.parent.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("__init__.py")} - {"."})
    missing = [room for room in rooms if f"{room.rsplit('/', 1)[-1]}/" not in section]
    assert missing == [], f"README's Layout section does not name {missing}"
