"""The `chargeback` command (`commands`) and the backfill runner it and the tests use (`backfill`).

May import everything else in the package; nothing imports it.
"""
