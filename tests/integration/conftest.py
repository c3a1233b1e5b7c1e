"""Fixtures shared by the integration tests (defined in helpers.py, which the e2e tests import too)."""

from tests.integration.helpers import exported  # noqa: F401 - registers the fixture for this folder
