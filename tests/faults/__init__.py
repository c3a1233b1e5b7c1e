"""The fault suite: kill -9, broker and PostgreSQL faults, rebalances; each case proves nothing lost or doubled."""
