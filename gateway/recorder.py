"""Writing usage and audit records off the request path.

A finished call's record is handed to a background thread of the process, which writes it (usage
record, reservation settlement and audit record, in one transaction) moments later, so the
caller does not wait for those writes. Nothing is lost: the admission wrote a reservation first,
and a reservation left unsettled — the process died before the thread wrote the record — is
turned into a ``lost`` usage and audit record by the sweeper. On a clean shutdown the queue is
drained before the process exits.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time

from django.db import close_old_connections, transaction
from django_tenants.utils import schema_context

from gateway.records import CallRecord

logger = logging.getLogger(__name__)

_BATCH = 200
_LINGER_SECONDS = 0.02
_MAX_QUEUED = 2000
_RETRIES = 3


def persist(record: CallRecord) -> None:
    """Write one call's usage and audit records (in the current schema), atomically."""
    persist_batch([record])


def persist_batch(records: list[CallRecord]) -> None:
    """Write calls' audit and usage records (in the current schema) in one transaction, and
    count the cache hits among them on the entries served."""
    from audit.services import record_audit_batch
    from cache.services import count_hits
    from usage.services import record_usage_batch

    with transaction.atomic():
        record_audit_batch(records)
        record_usage_batch(records)
        count_hits(records)


class Recorder:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, CallRecord]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, schema_name: str, record: CallRecord) -> bool:
        """Queue a record; False when the queue is full and the caller must write it itself
        (backpressure: memory and the records at risk in a crash stay bounded)."""
        if self._queue.qsize() >= _MAX_QUEUED:
            return False
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="call-recorder", daemon=True
                    )
                    self._thread.start()
        self._queue.put((schema_name, record))
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted record is written (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Linger a moment so that records arriving together are written together: one
            # transaction, one chain lock and one counter update per batch instead of per call.
            time.sleep(_LINGER_SECONDS)
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[tuple[str, CallRecord]]) -> None:
        for schema_name, record in batch:
            for attempt in range(_RETRIES):
                try:
                    with schema_context(schema_name):
                        persist(record)
                    break
                except Exception:
                    # The database may be restarting: retry, then leave it to the sweeper,
                    # which turns the call's reservation into a record.
                    close_old_connections()
                    if attempt == _RETRIES - 1:
                        logger.exception(
                            "could not record call; the sweeper will",
                            extra={"call_id": record.call_id},
                        )
                    else:
                        time.sleep(0.2 * (attempt + 1))


recorder = Recorder()
atexit.register(recorder.flush)
