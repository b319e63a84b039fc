"""The engine, free of Dagster: attribution, reconciliation, reports, and the money (`billing/`).

Functions over Arrow tables and the lake; the SQL they run is in `dbt_like_sql/`.
May import: `core`, `storage`. Never `dagster`, `sources`, `defs`, `cli`, `settings` or `definitions`.
"""
