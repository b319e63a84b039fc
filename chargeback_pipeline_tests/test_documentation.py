"""The documentation names only what exists: every repository file path, `chargeback` subcommand and `make`
target written in README.md, BENCHMARKS.md and deploy/README.md (in `code` or in code blocks)."""

import re
import subprocess
from pathlib import Path

import pytest

from chargeback_pipeline.cli.commands import main

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "BENCHMARKS.md", "deploy/README.md")
_INLINE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SOURCE_FILE = re.compile(r"^[\w./-]+\.(py|sql|yml|yaml|kql|j2|toml|lock|sh|md)$")
# A command where a shell would see one: first in the code, after environment settings, `$`, `&&`, `;` or `|`.
_COMMAND = re.compile(r"(?:^|[;&|$]\s*|^(?:[A-Z_]+=\S*\s+)+)(chargeback|make) ([a-z][a-z-]*)")
# Written paths that are not this repository's files: other repositories' (FOCUS specification, FinOps
# toolkit), a run's outputs, and the instance lock a run creates.
NOT_OURS = ("specification/", "docs-mslearn/", "src/templates/", "bench/results/", "data/")
NOT_OURS_NAMES = {"IngestionSetup_RawTables.kql", "IngestionSetup_v1_2.kql", ".chargeback-instance.lock"}


def _code(document: str) -> list[str]:
    text = (REPO / document).read_text(encoding="utf-8")
    return _INLINE.findall(text) + [line for block in _FENCE.findall(text) for line in block.splitlines()]


def _tracked_names() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {Path(path).name for path in files.splitlines()}


def _exists(path: str, document: str, names: set[str]) -> bool:
    if "/" not in path:
        return path in names
    roots = (REPO, REPO / "chargeback_pipeline", REPO / "dbt_like_sql", (REPO / document).parent)
    if "*" in path:  # a pattern names at least one file
        return any(next(root.glob(path), None) for root in roots)
    return any((root / path).exists() for root in roots)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_file_the_documentation_names_exists(document):
    names = _tracked_names()
    words = {word for token in _code(document) for word in token.split()[:1]}
    named = {
        word for word in words if _SOURCE_FILE.match(word) or word.startswith(("chargeback_pipeline/", "dbt_like_sql/"))
    }
    missing = sorted(
        path
        for path in named
        if not path.startswith(NOT_OURS) and path not in NOT_OURS_NAMES and not _exists(path, document, names)
    )

    assert named, f"no file named in {document}"
    assert not missing, f"{document} names files that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_command_the_documentation_names_exists(document):
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    targets |= {
        t for line in re.findall(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M) for t in line.split()
    }
    subcommands = set(main.commands)
    named = {match for token in _code(document) for match in _COMMAND.findall(token.strip())}
    unknown = sorted(
        f"{tool} {name}" for tool, name in named if name not in (subcommands if tool == "chargeback" else targets)
    )

    assert not unknown, f"{document} names commands that do not exist: {unknown}"
