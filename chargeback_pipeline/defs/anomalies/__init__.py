"""Cost anomalies per product and model against a trailing baseline, and their check."""
