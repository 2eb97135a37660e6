"""Loaded as a pytest plugin before Django's settings (``-p tests.environment``).

Each test process (each xdist worker) gets its own embedded broker folder, so that the Celery
workers one test process starts never take another process's tasks."""

import os
import shutil
from pathlib import Path

_BROKER = Path(__file__).resolve().parent.parent / "var" / "test-broker" / str(os.getpid())
os.environ.setdefault("SWITCHBOARD_BROKER_DIR", str(_BROKER))


def pytest_unconfigure(config):
    shutil.rmtree(_BROKER, ignore_errors=True)
