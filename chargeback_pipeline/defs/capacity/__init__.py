"""PTU capacity assets: hourly utilisation (`ptu_utilization`) and monthly rightsizing (`ptu_rightsizing`)."""
