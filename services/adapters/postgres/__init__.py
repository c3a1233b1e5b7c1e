"""PostgreSQL adapter: migrations, connections, the append-only log and the projection tables."""
