"""The audit: expectations computed from the landed raw rows and the pricing file by a path of its own.

It may import only `core.audit`, `core.periods` and `storage` (test_layout.py holds it): nothing of the money
engine (`core.billing`), the attribution or its SQL models, so a bug there cannot reach the evidence that
judges it (README: Checks, "independent evidence").
"""
