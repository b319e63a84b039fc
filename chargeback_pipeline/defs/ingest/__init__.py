"""Landing the raw APIM logs and deployment metrics, hour by hour (`raw_logs`)."""
