"""Azure Cost Management exports of the FOCUS cost and usage dataset (`FocusCost`): what Azure billed.

No Dagster here apart from `resource.py`. `runs` finds the newest complete run of each billing period
(manifest present, every listed blob present with its listed size and row count), `columns` declares
the columns read per schema version, `rows` reads a run's blobs (CSV, gzip CSV or Parquet) down to the
Azure OpenAI resources the pricing file names.
"""
