"""Loaded as a pytest plugin before Django's settings (``-p tests.environment``).

Each test process (each xdist worker) gets its own embedded broker folder, so that the Celery
workers one test process starts never take another process's tasks. xdist workers inherit the
controller's environment, so the folder is named after the test run and the xdist worker id
(set by xdist before this plugin loads), never inherited from the controller."""

import os
import shutil
from pathlib import Path

_run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_BROKER = Path(__file__).resolve().parent.parent / "var" / "test-broker" / f"{_run}-{_worker}"
os.environ["SWITCHBOARD_BROKER_DIR"] = str(_BROKER)


def pytest_unconfigure(config):
    shutil.rmtree(_BROKER, ignore_errors=True)
