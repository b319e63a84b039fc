"""What runs by itself: the hourly schedule (`schedules`), the daily and monthly rollup sensors (`sensors`),
and the content fingerprints they compare (`fingerprints`)."""
