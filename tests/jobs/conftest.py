import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def celery_worker(transactional_db, routing, settings):
    """Factory for real Celery worker processes on the test database and this process's
    embedded broker folder. Each returned process is killed at the end of the test."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
        SWITCHBOARD_ENV="local",
        SWITCHBOARD_MODELS_FILE=settings.SWITCHBOARD_MODELS_FILE,
        SWITCHBOARD_RETRY_BASE_SECONDS="0.01",
        SWITCHBOARD_JOB_LEASE_SECONDS="2",
        LOG_LEVEL="WARNING",
    )
    started: list[subprocess.Popen] = []
    # Tasks other tests queued without a worker must not be taken by this test's workers.
    inbox = settings.EMBEDDED_BROKER_DIR / "in"
    for message in inbox.glob("*") if inbox.is_dir() else []:
        message.unlink(missing_ok=True)

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-Q",
                "interactive,bulk",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("SWITCHBOARD_TEST_WORKER_LOG", os.devnull), "ab"),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()
