"""A fresh virtual environment outside the checkout with the package installed from its wheel, as the image
and any non-editable install have it: the locked dependencies (requirements.lock, hashes checked), then the
wheel with --no-deps."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_BIN = Path(sys.executable).parent
_NOT_SOURCES = (".git", ".venv", ".tools", "build", "dist", "data", ".dagster_home", ".wheelhouse", "*.egg-info")
_NOT_SOURCES += ("__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "test-artifacts", "results")


def build_wheel(into: Path) -> Path:
    """The wheel `pip wheel` builds (the same PEP 517 build as `python -m build`) from a copy of the checkout's
    sources: pip builds in the source folder, where a `build/` left by an earlier build could leak into it."""
    sources = into.parent / "sources"
    shutil.copytree(REPO, sources, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(into), str(sources)],
        check=True,
        timeout=600,
    )
    (wheel,) = into.glob("chargeback_pipeline-*.whl")
    return wheel


def uv_install(python: Path, *args: str) -> None:
    """uv (a test dependency) installs into `python`'s environment; it reads the system's certificates."""
    subprocess.run(
        [str(CHECKOUT_BIN / "uv"), "pip", "install", "--quiet", "--native-tls", "--python", str(python), *args],
        check=True,
        timeout=900,
    )


def installed_venv(root: Path, wheel: Path) -> Path:
    """A virtual environment under `root` with the locked dependencies and `wheel`; its bin folder."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    uv_install(python, "--require-hashes", "-r", str(REPO / "requirements.lock"))
    uv_install(python, "--no-deps", str(wheel))
    return venv / "bin"


def clean_environment(**settings: str | Path) -> dict[str, str]:
    """The caller's environment without its CHARGEBACK_*/DAGSTER_*/VIRTUAL_ENV settings, plus `settings`."""
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHARGEBACK_", "DAGSTER_")) and name not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    return keep | {name: str(value) for name, value in settings.items()}


def published_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by its relative path, with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }
