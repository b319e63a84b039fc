"""Attributing each hour's requests to products (`attributed_requests`) and the daily rollup
(`daily_product_usage`), with their checks."""
