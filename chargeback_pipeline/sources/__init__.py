"""Where the APIM logs and deployment metrics come from. One folder (or module) per source.

A source implements `base.LogSource` and knows nothing of Dagster; its folder's `resource.py` is its
Dagster resource (a `resource.LogSourceResource`), whose fields are its settings (CHARGEBACK_<FIELD>).
Adding a source: a new folder with its source and its resource, and one line in
`registry.SOURCE_RESOURCES`.
May import: `storage` (schemas), and `dagster` in `resource.py` modules only.
"""
