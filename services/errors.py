"""Errors shared by every part of services/: UserError, what a person can fix, shown in one line."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""
