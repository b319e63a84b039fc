"""Where the files the package reads at run time are: the SQL models and their docs (`dbt_like_sql/`), the
KQL queries, the example pricing file. Found through `importlib.resources`, so the same lookup works in a
checkout, an editable install and a wheel installed anywhere (the image, a run's pod).

In the repository `dbt_like_sql/` and `pricing.example.yaml` stay at the root, where a reader looks for
them; `chargeback_pipeline/dbt_like_sql` and `chargeback_pipeline/pricing.example.yaml` are relative
symlinks to them, and building the wheel copies them in as plain files (pyproject.toml
`[tool.setuptools.package-data]`). Only paths are computed here; nothing is read.
"""

from importlib.resources import files
from pathlib import Path

PACKAGE = "chargeback_pipeline"


def package_path(*parts: str) -> Path:
    """The file or folder `parts` of the installed package as a real path, or a FileNotFoundError naming it."""
    path = Path(str(files(PACKAGE).joinpath(*parts))).resolve()
    if not path.exists():
        raise FileNotFoundError(
            f"{'/'.join(parts)} is missing from the installed package {PACKAGE} (looked at {path}): "
            "the package was built without its data files; build it with `python -m build` from a checkout"
        )
    return path
