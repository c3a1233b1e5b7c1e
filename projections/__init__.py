"""Voting rules and folds: pure functions from a meeting's events to decisions and tallies."""
