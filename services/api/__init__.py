"""The HTTP read API and dashboard (issue 13): FastAPI over the read side the CLI uses, reader login only."""
