"""Adapters to the outside parts: PostgreSQL and Kafka."""
