"""Logged tokens against the deployments' own metrics, hourly and daily, with the check that gates publication."""
