"""Benchmarks of chargeback_pipeline: stages, floors, ingest and backfill (see BENCHMARKS.md).

Not a test suite: `python -m bench run --quick` (a 1M-request day) or `python -m bench run` (10M).
Every measured piece runs in a fresh child process, so each peak-memory figure is that piece's own.
"""
