"""Demo tooling: meeting spec files, a synthetic register and realistic simulated vote traffic."""
