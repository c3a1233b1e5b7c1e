"""The read side shared by the CLI and the API: tallies, reports, status, audit, verification, exports."""
