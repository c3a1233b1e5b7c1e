"""Observability: structured logs, metrics and health endpoints of every service."""
