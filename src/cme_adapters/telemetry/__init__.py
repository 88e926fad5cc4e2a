"""Metrics (OpenTelemetry to Prometheus), traces (OTLP) and the spans of database statements."""
