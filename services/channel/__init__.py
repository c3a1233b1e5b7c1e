"""A voting channel's side of the wire contract: its signing key (keys) and a Kafka client (client)."""
