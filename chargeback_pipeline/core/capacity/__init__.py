"""PTU capacity: how much of each PTU deployment's capacity an hour used, and what PTU count a month needed."""
