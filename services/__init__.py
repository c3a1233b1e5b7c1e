"""Adapters (Kafka, PostgreSQL, local stack) and the wiring of vote-ledger's processes."""
