"""Actual cost: the Cost Management export's charges allocated to the day's lines (`billed_chargeback`),
and the sensor that re-rolls the days a new export run changed."""
