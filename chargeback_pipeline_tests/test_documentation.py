"""The documentation names only what exists: every repository file path, and every command of ours or of
Dagster's, written in README.md, BENCHMARKS.md and deploy/README.md (in `code` or in code blocks).

- A path: any word of the code (not only its first) that ends in a source file's suffix, starts with one of
  the repository's folders (`deploy/Dockerfile`, `.ci/run`, `marts/fct_...`: a model or module may be
  named without its suffix) or is one of its top-level files.
- A command: each shell command in the code (split at `&&`, `;`, `|`, `$(`; settings and `# comments`
  dropped). `chargeback SUB --option`: the subcommand and its options; `make T...`: every target;
  `python -m M` of our packages: the module; `dagster`, `dg`, `dagster-webserver`, `dagster-daemon`: the
  subcommand path and its options, as that command's `--help` lists them.
"""

import importlib.util
import io
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from unittest.mock import patch

import pytest

from chargeback_pipeline.cli.commands import main

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "BENCHMARKS.md", "deploy/README.md")
_INLINE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SOURCE_FILE = re.compile(r"^[\w./*-]+\.(py|sql|yml|yaml|kql|j2|toml|lock|sh|md)$")
_SETTING = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_SHELL_SEPARATORS = re.compile(r"&&|\|\||;|\||\$\(|\)")
# Written paths that are not this repository's files: other repositories' (FOCUS specification, FinOps
# toolkit), a run's outputs, and the instance lock a run creates.
NOT_OURS = ("specification/", "docs-mslearn/", "src/templates/", "bench/results/", "data/")
NOT_OURS_NAMES = {"IngestionSetup_RawTables.kql", "IngestionSetup_v1_2.kql", ".chargeback-instance.lock"}
# Files a user writes: `chargeback discover --write prices.yaml`, their own pricing file in a ConfigMap.
NOT_OURS_NAMES |= {"prices.yaml", "pricing.yaml"}
# Dagster's own commands, checked against their `--help`.
DAGSTER_TOOLS = ("dagster", "dg", "dagster-webserver", "dagster-daemon")
OUR_PACKAGES = ("chargeback_pipeline", "chargeback_pipeline_tests", "bench", "mutants", "deploy")


def _code(document: str) -> list[str]:
    text = (REPO / document).read_text(encoding="utf-8")
    return _INLINE.findall(text) + [line for block in _FENCE.findall(text) for line in block.splitlines()]


def _commands(document: str) -> list[list[str]]:
    """Every shell command in the document's code, as its words (settings before it dropped)."""
    commands = []
    for code in _code(document):
        for part in _SHELL_SEPARATORS.split(code.split(" # ")[0]):
            words = part.replace("\\", " ").split()
            while words and _SETTING.match(words[0]):
                words.pop(0)
            if words:
                commands.append(words)
    return commands


@cache
def _tracked() -> tuple[set[str], set[str]]:
    """The repository's tracked file names and its top-level folders."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    paths = files.splitlines()
    return {Path(path).name for path in paths}, {path.split("/")[0] for path in paths if "/" in path}


def _roots(document: str) -> tuple[Path, ...]:
    return (REPO, REPO / "chargeback_pipeline", REPO / "dbt_like_sql", (REPO / document).parent)


def _is_path(word: str, document: str) -> bool:
    names, top_folders = _tracked()
    if _SOURCE_FILE.match(word) or (word in names and (REPO / word).is_file()):
        return True
    first = word.split("/")[0]
    if "/" not in word or not first:
        return False
    if first in top_folders:
        return True
    # A room of the package or a folder of the SQL models (`defs/...`, `marts/...`), named from inside.
    return any((root / first).is_dir() for root in _roots(document)[1:3])


def _exists(path: str, document: str) -> bool:
    names, _ = _tracked()
    if "/" not in path:
        return path in names
    roots = _roots(document)
    if "*" in path:  # a pattern names at least one file
        return any(next(root.glob(path), None) for root in roots)
    # A model or module may be named without its suffix.
    return any((root / f"{path}{suffix}").exists() for root in roots for suffix in ("", ".sql", ".py"))


def _words(code: str) -> set[str]:
    """The code's words, without the quotes, brackets and punctuation around them."""
    return {word.strip("'\"()[]{}<>").rstrip(".,:;") for word in re.split(r"[\s=,()\[\]{}<>\"'`|]+|\$\(", code)} - {""}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_file_the_documentation_names_exists(document):
    named = {word for code in _code(document) for word in _words(code) if _is_path(word, document)}
    missing = sorted(
        path
        for path in named
        if not path.startswith(NOT_OURS) and path not in NOT_OURS_NAMES and not _exists(path, document)
    )

    assert named, f"no file named in {document}"
    assert not missing, f"{document} names files that do not exist: {missing}"


def _make_targets() -> set[str]:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z -]*):", makefile, re.MULTILINE))
    targets = {target for line in targets for target in line.split()}
    return targets | {t for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for t in line.split()}


def _unknown_chargeback(words: list[str]) -> list[str]:
    if len(words) < 2 or not re.fullmatch(r"[a-z][a-z-]*", words[1]):
        return []  # the command alone, or with a placeholder
    command = main.commands.get(words[1])
    if command is None:
        return [f"chargeback {words[1]}"]
    options = {name for param in command.params for name in param.opts + param.secondary_opts}
    return [f"chargeback {words[1]} {word}" for word in words[2:] if word.startswith("-") and word not in options]


def _unknown_python_module(words: list[str]) -> list[str]:
    if "-m" not in words[:-1]:
        return []
    module = words[words.index("-m") + 1]
    if module.split(".")[0] not in OUR_PACKAGES:
        return []  # someone else's tool (pytest, a validator in its own environment)
    return [] if importlib.util.find_spec(module) else [f"python -m {module}"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_command_the_documentation_names_exists(document):
    targets = _make_targets()
    unknown = []
    for words in _commands(document):
        tool = words[0].rsplit("/", 1)[-1]
        if tool == "chargeback" and words[0] in ("chargeback", ".venv/bin/chargeback"):
            unknown += _unknown_chargeback(words)
        elif tool == "make":
            unknown += [f"make {t}" for t in words[1:] if not t.startswith("-") and "=" not in t and t not in targets]
        elif tool.startswith("python"):
            unknown += _unknown_python_module(words)

    assert not unknown, f"{document} names commands that do not exist: {unknown}"


def _dagster_command(words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A Dagster command as (the executable and its subcommands, the options it is given)."""
    path = [words[0]]
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z_-]*", word):
            break
        path.append(word)
    options = tuple(word.split("=")[0] for word in words[len(path) :] if word.startswith("-"))
    return tuple(path), options


def _help(path: tuple[str, ...]) -> tuple[int, str]:
    """`<path> --help` as the console script answers it (its entry point, called in this process: no new
    interpreter per command), and its exit status."""
    (entry_point,) = entry_points(group="console_scripts", name=path[0])
    output = io.StringIO()
    with redirect_stdout(output), redirect_stderr(output), patch.object(sys, "argv", [*path, "--help"]):
        try:
            entry_point.load()()
            status = 0
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return status, output.getvalue()


def test_every_dagster_command_the_documentation_names_exists():
    """Each subcommand path answers `--help` (a later word that is an argument, not a subcommand, is fine:
    click shows the help of the command before it), and every option written after it is in that help."""
    named: dict[tuple[str, ...], set[str]] = {}
    for document in DOCUMENTS:
        for words in _commands(document):
            if words[0] in DAGSTER_TOOLS:
                path, options = _dagster_command(words)
                named.setdefault(path, set()).update(options)
    assert ("dagster", "job", "backfill") in named, "the README's deployment commands were not found"

    unknown = []
    for path, options in sorted(named.items()):
        status, text = _help(path)
        if status != 0:
            unknown.append(f"{' '.join(path)}: {text.strip().splitlines()[-1:]}")
            continue
        unknown += [f"{' '.join(path)} {option}" for option in options if not re.search(rf"(^|[\s,/]){option}\b", text)]

    assert not unknown, f"the documentation names Dagster commands or options that do not exist: {unknown}"
