"""Fixtures of the fault suite: the services as killable subprocesses, always stopped, their logs shown on failure."""

from __future__ import annotations

import contextlib

import pytest

from tests.faults.harness import Services


@pytest.fixture
def service_settings(settings):
    """The settings the services run on: the test's own; a module whose services use other servers overrides it."""
    return settings


@pytest.fixture
async def services(service_settings, tmp_path, request):
    """`Services` on the test's service settings (its own database and topics); stopped at the end, even on failure.

    The test's topics are deleted afterwards: every test namespace leaves 11 partitions on the broker, and
    ~19,600 of them left by a day of test runs exhausted the shared broker's 20,000 open files (it shut down).
    """
    running = Services(service_settings, tmp_path / "logs")
    try:
        yield running
    finally:
        running.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(running.tail())
        from services.devtools.bench.scratch import drop_topics

        with contextlib.suppress(Exception):  # a broker a fault left down must not hide the test's own verdict
            await drop_topics(service_settings)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so a fixture can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
