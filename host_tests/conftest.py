"""Shared pytest fixtures: brokers and the device lib (pinned umqtt). Keep it small."""

import pytest

from streetnode.common import broker as _broker
from streetnode.common import deps as _deps
from streetnode.common.errors import Failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true, as .ci/run sets it on its fresh machine) a skip is a failure: CI
    installs every tool and pins every package the tests use, so a test that skips there
    (mosquitto, a peer library or systemd-analyze missing) is a broken install, not an
    absent option. On a developer's machine a missing tool still skips, with its reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _strict_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped in CI, where nothing may be: %s" % reason


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module that skips while it is collected (a module-level
    pytest.skip or importorskip): in CI that is a failure too, not a quiet hole."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _strict_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped while collected in CI, where nothing may be: %s" % reason


def _strict_ci():
    import os

    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Shared device checks outside a test_*.py file: pytest explains their failed asserts too.
pytest.register_assert_rewrite("host_tests.device.pm_uart_checks")


@pytest.fixture(scope="session")
def device_lib():
    """build/deps/lib: the pinned umqtt.simple (fetched once, then offline) and our bridges."""
    try:
        return _deps.device_lib()
    except Failure as e:
        pytest.fail("cannot provide the device lib: %s" % e)


def _mosquitto(**options):
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    with _broker.Broker("mosquitto", **options) as b:
        yield b


@pytest.fixture
def mosquitto():
    """A fresh mosquitto on a free loopback port for one test (CI installs mosquitto).
    It keeps nothing over a restart: sessions and subscriptions go with the process."""
    yield from _mosquitto()


@pytest.fixture
def persistent_mosquitto():
    """A fresh mosquitto with persistence: across its stop()/start() it keeps the
    persistent sessions of its clients (clean_session False) and their queued messages."""
    yield from _mosquitto(persistence=True)


@pytest.fixture
def amqtt_broker():
    """The embedded amqtt broker (the default when mosquitto is missing), for one test."""
    with _broker.Broker("amqtt") as b:
        yield b


@pytest.fixture(scope="session")
def mpy_tree(device_lib):
    """build/mpy: the device code and the device lib compiled with mpy-cross (once)."""
    from streetnode.common import build as _build

    return _build.compile_tree(lib=device_lib)


@pytest.fixture
def runner(tmp_path, mpy_tree):
    """make(name, **NodeRunner options): whole nodes (host_tests/fleet.py), stopped after the test."""
    from host_tests.fleet import NodeRunner

    nodes = []

    def make(name="n1", **kwargs):
        r = NodeRunner(tmp_path / name, mpy_tree, **kwargs)
        nodes.append(r)
        return r

    yield make
    for r in nodes:
        r.stop()
