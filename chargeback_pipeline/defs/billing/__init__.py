"""The money assets: the daily chargeback, its FOCUS export and the monthly statement, with their checks."""
