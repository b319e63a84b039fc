"""Planted bugs: a curated list of mutations of the pipeline, each of which must be caught (README: Checks,
"Planted bugs"). `python -m mutants` (CI: `.ci/mutants`) runs them all."""
