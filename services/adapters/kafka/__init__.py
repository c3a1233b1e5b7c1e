"""Kafka adapter: topics, producers and a raw record reader."""
