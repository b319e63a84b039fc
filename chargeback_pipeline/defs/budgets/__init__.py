"""Budgets per product and month: spend to date, month-end forecast and their checks."""
