import pytest


@pytest.fixture
def celery_worker(worker_process, routing):
    """Factory for real Celery worker processes with fast retries and a short job lease (so a
    killed worker's job is taken over within the test)."""

    def start():
        return worker_process(
            SWITCHBOARD_RETRY_BASE_SECONDS="0.01", SWITCHBOARD_JOB_LEASE_SECONDS="2"
        )

    return start
