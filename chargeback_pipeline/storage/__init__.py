"""Where data lives and how it is written: object stores (a folder, Azure Blob), the lake's Parquet, the
published report files, the Arrow schemas of the landed tables, every object key, and the SQL runner.

May import: `storage`. Never `dagster` or any other part of the package.
"""
