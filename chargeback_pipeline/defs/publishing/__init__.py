"""The published usage report, and the reconciliation gate that every published daily file passes."""
