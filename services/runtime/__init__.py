"""The running services: the ledger (Kafka to the log) and the projector (the log to the tallies)."""
