"""Money, pure: the pricing file, PTU and pay-as-you-go allocation, chargeback lines, statements, FOCUS.

No I/O and no Dagster: Arrow tables and a validated `Pricing` in, Arrow tables out, exact to the minor unit.
May import: `core.billing`, `core.periods`, `storage.schemas` (Arrow types). Nothing else of the package.
"""
