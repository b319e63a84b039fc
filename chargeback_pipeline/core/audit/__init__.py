"""The audit: expectations computed from the landed raw rows and the pricing file by a path of its own.

Nothing here imports the money engine (`core.billing`), the attribution or its SQL models: a bug there
cannot reach the evidence that judges it (README: Checks, "independent evidence").
"""
