"""Async feature runs: start (202 at once, no provider call), run in a Celery worker, events,
cancel, and recovery of jobs whose worker died.

A job's AI call has one run id for all its attempts, so however often a job is retried its
usage and audit records are written once and it is charged once.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import schema_context

from gateway.errors import InvalidRequest, NotFound, RateLimited, SwitchboardError
from jobs.models import Job, JobEvent
from prompts.models import Feature
from prompts.rendering import check_input

logger = logging.getLogger(__name__)

PRIORITIES = ("interactive", "bulk")


def add_event(job: Job, event: str, data: dict) -> JobEvent:
    for _ in range(3):
        seq = (JobEvent.objects.filter(job=job).aggregate(m=Max("seq"))["m"] or 0) + 1
        try:
            with transaction.atomic():
                return JobEvent.objects.create(job=job, seq=seq, event=event, data=data)
        except IntegrityError:
            continue  # another writer took this number
    raise RuntimeError("could not append a job event")


def start_job(
    *,
    tenant,
    slug: str,
    data: dict,
    end_user: str,
    key,
    access_tags=None,
    priority: str = "interactive",
    webhook_url: str = "",
    conversation_id: str = "",
    cache_options: dict | None = None,
) -> Job:
    """Validate, store and enqueue an async run. Raises 400/404/429 before anything is queued."""
    feature = Feature.objects.filter(slug=slug).first()
    if feature is None:
        raise NotFound(f"No feature {slug!r}.", param="slug", code="feature_not_found")
    if priority not in PRIORITIES:
        raise InvalidRequest("priority is interactive or bulk.", param="priority")
    deployment = getattr(feature, "deployment", None)
    if deployment is None or deployment.active_version is None:
        raise NotFound(f"The feature {slug!r} has no published version.", param="slug")
    check_input(deployment.active_version.variables, data)
    if conversation_id:
        from conversations.services import conversation_for_run

        conversation_for_run(conversation_id=conversation_id, end_user=end_user)
    in_flight = Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).count()
    if in_flight >= settings.SWITCHBOARD_MAX_JOBS_IN_FLIGHT:
        raise RateLimited(
            f"This tenant already has {in_flight} jobs queued or running; the limit is "
            f"{settings.SWITCHBOARD_MAX_JOBS_IN_FLIGHT}.",
            retry_after=10,
            code="too_many_jobs",
        )
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            feature=slug,
            input=data,
            end_user=end_user,
            access_tags=access_tags or [],
            conversation_id=conversation_id or "",
            cache_options=cache_options or {},
            api_key_id=getattr(key, "id", None),
            api_key_prefix=getattr(key, "prefix", ""),
            priority=priority,
            webhook_url=webhook_url,
            deadline_at=now + timedelta(seconds=settings.SWITCHBOARD_JOB_DEADLINE_SECONDS),
        )
        add_event(job, "status", {"status": job.status})
        transaction.on_commit(lambda: enqueue(tenant.schema_name, job))
    return job


def enqueue(schema_name: str, job: Job) -> None:
    from jobs.tasks import run_job

    # One queue per priority: a tenant's bulk backlog never sits in front of interactive work.
    run_job.apply_async(args=[schema_name, str(job.id)], queue=job.priority)


def cancel_job(*, job: Job) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status in Job.FINISHED:
            return job
        job.status = Job.Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
        add_event(job, "status", {"status": job.status})
    return job


class _JobKey:
    """What the gateway needs of the key that started the job."""

    def __init__(self, job: Job) -> None:
        self.id = job.api_key_id
        self.prefix = job.api_key_prefix


def _claim(job_id) -> Job | None:
    """Mark the job running (one worker at a time, until its lease ends)."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in Job.FINISHED:
            return None
        if job.status == Job.Status.RUNNING and job.lease_until and job.lease_until > now:
            return None  # another worker holds it
        job.status = Job.Status.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.lease_until = now + timedelta(seconds=settings.SWITCHBOARD_JOB_LEASE_SECONDS)
        job.save(update_fields=["status", "attempts", "started_at", "lease_until"])
        add_event(job, "status", {"status": job.status, "attempt": job.attempts})
    return job


def _finish(job: Job, *, status: str, result=None, error=None) -> None:
    with transaction.atomic():
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.status in Job.FINISHED:
            return  # cancelled meanwhile: the cancellation stands
        current.status = status
        current.result = result
        current.error = error
        current.finished_at = timezone.now()
        current.save(update_fields=["status", "result", "error", "finished_at"])
        if result is not None:
            add_event(current, "result", result)
        if error is not None:
            add_event(current, "error", error)
        add_event(current, "status", {"status": status})
        if status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            from jobs.webhooks import emit

            emit(
                f"job.{status}",
                {
                    "job_id": str(current.id),
                    "status": status,
                    "feature": current.feature,
                    "run_id": current.call_id,
                    "status_url": f"/api/v1/jobs/{current.id}",
                    "error": error,
                },
            )


class _TokenEvents:
    """A job's tokens as ``delta`` events, batched (one event per quarter second or 400
    characters), so a client following the job sees the answer arrive without a write per
    token. A retried attempt streams again after its ``status: running`` event."""

    INTERVAL = 0.25
    CHARS = 400

    def __init__(self, job: Job, schema_name: str) -> None:
        self._job = job
        self._schema = schema_name
        self._buffer: list[str] = []
        self._size = 0
        self._last = time.monotonic()

    async def feed(self, text: str) -> None:
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= self.CHARS or time.monotonic() - self._last >= self.INTERVAL:
            await sync_to_async(self.flush)()

    def flush(self) -> None:
        if not self._buffer:
            return
        content = "".join(self._buffer)
        self._buffer, self._size, self._last = [], 0, time.monotonic()
        with schema_context(self._schema):
            add_event(self._job, "delta", {"content": content})


def run_job(tenant, job_id) -> None:
    """The worker side: the full path of a feature run, then the job's outcome and events."""
    from prompts.runs import execute_run_streaming

    job = _claim(job_id)
    if job is None:
        return
    if timezone.now() > job.deadline_at:
        _finish(
            job,
            status=Job.Status.FAILED,
            error={
                "type": "timeout",
                "code": "job_deadline_exceeded",
                "message": "The job did not finish before its deadline.",
            },
        )
        return
    tokens = _TokenEvents(job, tenant.schema_name)
    try:
        _, payload = async_to_sync(execute_run_streaming)(
            tenant=tenant,
            slug=job.feature,
            data=job.input,
            end_user=job.end_user,
            request_id=f"job_{job.id.hex}",
            key=_JobKey(job),
            access_tags=job.access_tags,
            call_id=job.call_id,
            on_delta=tokens.feed,
            conversation_id=job.conversation_id or None,
            cache_options=job.cache_options or None,
        )
    except SwitchboardError as exc:
        tokens.flush()
        _finish(
            job,
            status=Job.Status.FAILED,
            error={
                "type": exc.type,
                "code": exc.code,
                "message": exc.message,
                "status": exc.status,
            },
        )
        return
    tokens.flush()
    _finish(job, status=Job.Status.SUCCEEDED, result=payload)


def recover_stale_jobs() -> int:
    """Jobs whose worker died: queued again while attempts remain, else failed (current
    schema). The run id stays the same, so the retry is charged and recorded once."""
    now = timezone.now()
    stale = Job.objects.filter(status=Job.Status.RUNNING, lease_until__lt=now)
    count = 0
    for job in stale:
        if job.attempts >= settings.SWITCHBOARD_JOB_MAX_ATTEMPTS:
            _finish(
                job,
                status=Job.Status.FAILED,
                error={
                    "type": "worker_error",
                    "code": "job_attempts_exhausted",
                    "message": f"The job's worker stopped {job.attempts} times.",
                },
            )
        else:
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.QUEUED, lease_until=None
            )
            from django.db import connection

            enqueue(connection.schema_name, job)
        count += 1
    return count
